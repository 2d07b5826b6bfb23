"""The lifecycle states every layer shares: the API schemas, the ORM models, the CLI.

Plain enums with no SQLAlchemy, so what only reads or prints a state (the typed client, the
``stratus`` CLI) does not load the ORM to know them.
"""

from __future__ import annotations

import enum

__all__ = ["NamespaceState", "OperationState"]


class NamespaceState(enum.StrEnum):
    ACTIVATING = "ACTIVATING"
    ACTIVE = "ACTIVE"
    UPDATING = "UPDATING"
    DELETING = "DELETING"
    FAILED = "FAILED"


class OperationState(enum.StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    FULFILLED = "FULFILLED"
    FAILED = "FAILED"
