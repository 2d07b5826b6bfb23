"""The lifecycle states every layer shares: the API schemas, the ORM models, the CLI.

Plain enums with no SQLAlchemy, so what only reads or prints a state (the typed client, the
``stratus`` CLI) does not load the ORM to know them.
"""

from __future__ import annotations

import enum

__all__ = [
    "AccountState",
    "ApiKeyState",
    "CellPlacement",
    "CellProbeState",
    "CellState",
    "NamespaceState",
    "OperationState",
    "SearchAttributeType",
]


class AccountState(enum.StrEnum):
    """An account's lifecycle, set by the operator. ``suspended``: the gateway refuses its
    namespaces and its API is read-only; ``deleting``: its namespaces are being deleted;
    ``deleted``: a tombstone (the audit trail stays), its cells' data removed after the
    retention."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETING = "deleting"
    DELETED = "deleted"


class NamespaceState(enum.StrEnum):
    ACTIVATING = "ACTIVATING"
    ACTIVE = "ACTIVE"
    UPDATING = "UPDATING"
    DELETING = "DELETING"
    FAILED = "FAILED"


class ApiKeyState(enum.StrEnum):
    """A key authenticates only while enabled (and unexpired); the API-key list filters on it."""

    ENABLED = "enabled"
    DISABLED = "disabled"


class OperationState(enum.StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    FULFILLED = "FULFILLED"
    FAILED = "FAILED"


class CellPlacement(enum.StrEnum):
    """How namespaces are put on cells: one account per cell, or many accounts packed by
    capacity (``STRATUS_CELL_PLACEMENT`` for new namespaces; a registered cell's own kind)."""

    DEDICATED = "dedicated"
    SHARED = "shared"


class CellState(enum.StrEnum):
    """A registered cell takes new namespaces only while ACTIVE."""

    ACTIVE = "active"
    DRAINING = "draining"


class CellProbeState(enum.StrEnum):
    """What the last health probe of a cell's frontend found."""

    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class SearchAttributeType(enum.StrEnum):
    """The type of a namespace's custom search attribute, named as Temporal Cloud names them
    (``Text`` is full-text, ``Keyword`` exact-match, ``KeywordList`` a list of keywords)."""

    TEXT = "Text"
    KEYWORD = "Keyword"
    INT = "Int"
    DOUBLE = "Double"
    BOOL = "Bool"
    DATETIME = "Datetime"
    KEYWORD_LIST = "KeywordList"
