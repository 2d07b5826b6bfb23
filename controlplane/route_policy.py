"""Which action every API route declares, and the role-by-route matrix the policy yields.

Each cell of the matrix is what ``auth.authorize`` answers for that column's principal on
probing resources (the whole account, its own keys, a namespace where it holds a permission):
nothing here knows which role may do what. The matrix is printed into ``docs/security.md``
(``python -m controlplane.route_policy`` rewrites it);
``tests/controlplane/test_policy_routes.py`` fails when a route declares no action or the
document is stale, and checks the running API against the document.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from auth import (
    EVERY,
    AccountRole,
    Action,
    NamespacePermission,
    Principal,
    PrincipalKind,
    Resource,
    authorize,
)

MATRIX_HEADING = "## Role \N{MULTIPLICATION SIGN} route matrix (generated)"
SCOPED_SERVICE_ACCOUNT = "namespace-scoped service account"
COLUMNS: tuple[str, ...] = (
    "operator",
    *(role.value for role in AccountRole),
    SCOPED_SERVICE_ACCOUNT,
)


@dataclass(frozen=True)
class RouteAction:
    method: str
    path: str
    action: Action | None


def _declared_action(dependant: Dependant) -> Action | None:
    """The action of the ``requires(...)`` dependency anywhere in the dependant tree."""
    action = getattr(dependant.call, "stratus_action", None)
    if isinstance(action, Action):
        return action
    for dependency in dependant.dependencies:
        found = _declared_action(dependency)
        if found is not None:
            return found
    return None


def _walk(routes: Sequence[BaseRoute], prefix: str) -> Iterator[RouteAction]:
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            # FastAPI >= 0.165 keeps included routers as a branch (prefix on the include).
            context_prefix: str = getattr(route, "include_context").prefix  # noqa: B009
            yield from _walk(original.routes, prefix + context_prefix)
        elif isinstance(route, APIRoute):
            action = _declared_action(route.dependant)
            for method in sorted(route.methods or ()):
                yield RouteAction(method, prefix + route.path, action)
        elif isinstance(route, Route):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    yield RouteAction(method, prefix + route.path, None)


def route_actions(app: FastAPI) -> list[RouteAction]:
    """Every (method, path) the app serves, with the action it declares (None if none)."""
    return sorted(_walk(app.routes, ""), key=lambda r: (r.path, r.method))


def column_principal(column: str) -> Principal:
    """A principal standing for one matrix column (no namespace permissions)."""
    if column == "operator":
        return Principal(PrincipalKind.OPERATOR, "operator", None, None, "operator")
    if column == SCOPED_SERVICE_ACCOUNT:
        return Principal(
            PrincipalKind.SERVICE_ACCOUNT, "sa", "acct", None, "sa", namespace_scope="ns"
        )
    return Principal(PrincipalKind.USER, "user", "acct", column, "user")


def decision(column: str, action: Action) -> str:
    """``allowed``, ``denied``, ``own`` (only on resources the caller owns: its API keys) or
    ``ns <permission>`` (only on namespaces where the caller holds that permission), as
    ``auth.authorize`` answers for the column's principal."""
    principal = column_principal(column)
    account_id = principal.account_id
    if authorize(principal, action, Resource.whole_account(account_id)):
        return "allowed"
    if authorize(
        principal, action, Resource(account_id, namespace_id=EVERY, owner_id=principal.id)
    ):
        return "own"
    namespace_id = principal.namespace_scope or "ns"
    for permission in sorted(NamespacePermission, key=lambda p: p.rank):
        holder = replace(principal, namespace_permissions={namespace_id: permission})
        if authorize(holder, action, Resource(account_id, namespace_id, owner_id=EVERY)):
            return f"ns {permission.value}"
    return "denied"


def render_matrix(app: FastAPI, public_paths: frozenset[str]) -> str:
    lines = [
        "| method | path | action | " + " | ".join(COLUMNS) + " |",
        "|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for route in route_actions(app):
        if route.path in public_paths or route.action is None:
            continue
        cells = [decision(column, route.action) for column in COLUMNS]
        lines.append(
            f"| {route.method} | `{route.path}` | `{route.action.value}` | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def replace_matrix(document: str, matrix: str) -> str:
    """``document`` with the table under :data:`MATRIX_HEADING` replaced by ``matrix``."""
    start = document.index(MATRIX_HEADING)
    table_start = document.index("\n| method | path |", start) + 1
    table_end = table_start
    rest = document[table_start:].splitlines(keepends=True)
    for line in rest:
        if not line.startswith("|"):
            break
        table_end += len(line)
    return document[:table_start] + matrix + document[table_end:]


def main() -> None:
    from controlplane.app import PUBLIC_PATHS, create_app
    from controlplane.config import Settings

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/security.md")
    app = create_app(Settings(), run_migrations=False)
    path.write_text(replace_matrix(path.read_text(), render_matrix(app, PUBLIC_PATHS)))


if __name__ == "__main__":
    main()
