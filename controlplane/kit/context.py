"""Per-request context that services and audit read without threading it through every call."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("stratus_request_id", default=None)
# The caller's account once the request is authenticated (read by JSON logs).
account_id_var: ContextVar[str | None] = ContextVar("stratus_account_id", default=None)
