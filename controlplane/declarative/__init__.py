"""Declarative onboarding: ``stratus apply -f stratus.yaml`` and ``stratus export``.

The spec (``spec``) is validated whole before anything is read from the API; the plan
(``plan``) reads today's state through the typed client and diffs it; ``execute`` writes
it; ``export`` writes an account as a spec. Like the client, this imports no ORM or web
framework (import-linter)."""

from controlplane.declarative.export import export
from controlplane.declarative.plan import (
    ApplyConflict,
    ApplyFailed,
    ApplyResult,
    Change,
    Plan,
    execute,
    plan,
)
from controlplane.declarative.spec import AccountSpec, SpecError, dump, load, parse

__all__ = [
    "AccountSpec",
    "ApplyConflict",
    "ApplyFailed",
    "ApplyResult",
    "Change",
    "Plan",
    "SpecError",
    "dump",
    "execute",
    "export",
    "load",
    "parse",
    "plan",
]
