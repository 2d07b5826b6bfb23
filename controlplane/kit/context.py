"""Per-request context that services and audit read without threading it through every call."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("stratus_request_id", default=None)
