"""Every route declares an action, docs/security.md holds the current role-by-route matrix (as
``auth.authorize`` answers it), and the running API refuses each role exactly where the
document says ``denied``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import APIRouter
from identity_support import assert_problem, service_account_with_key, user_with_key
from support import StratusUp, create_active_namespace, http, new_tenant

from auth import AccountRole
from controlplane.app import PUBLIC_PATHS, create_app
from controlplane.config import Settings
from controlplane.route_policy import (
    COLUMNS,
    MATRIX_HEADING,
    SCOPED_SERVICE_ACCOUNT,
    RouteAction,
    render_matrix,
    route_actions,
)

SECURITY_MD = Path(__file__).resolve().parents[2] / "docs" / "security.md"
APP = create_app(Settings(), run_migrations=False)
ROUTES = route_actions(APP)


def _public(route: RouteAction) -> bool:
    return route.path in PUBLIC_PATHS or route.path.startswith("/docs")


PROTECTED = [route for route in ROUTES if not _public(route)]


def _documented_matrix() -> dict[tuple[str, str], dict[str, str]]:
    """(method, path) → column → cell, as docs/security.md shows it to readers."""
    document = SECURITY_MD.read_text()
    table = document[document.index(MATRIX_HEADING) :].split("\n| method | path |", 1)[1]
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        method, path, _action, *decisions = (cell.strip() for cell in line.strip("|").split("|"))
        cells[(method, path.strip("`"))] = dict(zip(COLUMNS, decisions, strict=True))
    return cells


def test_the_walk_finds_every_route_of_the_openapi_schema() -> None:
    """The route walk sees what FastAPI serves (so a new router cannot hide from it)."""
    walked = {(route.method.lower(), route.path) for route in ROUTES}
    for path, operations in APP.openapi()["paths"].items():
        for method in operations:
            assert (method, path) in walked, f"{method.upper()} {path} not found by the walk"


def test_every_non_public_route_declares_an_action() -> None:
    undeclared = [f"{r.method} {r.path}" for r in PROTECTED if r.action is None]
    assert not undeclared, (
        "routes without requires(Action.X) (declare one, or add a deliberately public path "
        f"to controlplane.app.PUBLIC_PATHS): {undeclared}"
    )
    assert {"/api/v1/users", "/api/v1/api-keys", "/api/v1/namespaces"} <= {
        r.path for r in PROTECTED
    }


def test_an_unprotected_route_in_a_nested_router_is_found() -> None:
    """The check is not vacuous: a route added without requires() inside included routers is
    reported with no action."""
    app = create_app(Settings(), run_migrations=False)
    inner = APIRouter(prefix="/leaky")

    @inner.get("/{thing_id}")
    async def leaky(thing_id: str) -> dict[str, str]:
        return {"thing_id": thing_id}

    outer = APIRouter(prefix="/api/v1")
    outer.include_router(inner)
    app.include_router(outer)
    found = [r for r in route_actions(app) if r.path == "/api/v1/leaky/{thing_id}"]
    assert found == [RouteAction("GET", "/api/v1/leaky/{thing_id}", None)]


def test_security_md_holds_the_current_matrix() -> None:
    matrix = render_matrix(APP, PUBLIC_PATHS)
    assert matrix in SECURITY_MD.read_text(), (
        "docs/security.md is stale: run `python -m controlplane.route_policy`"
    )


@pytest.fixture(scope="module")
def callers(stratus: StratusUp) -> dict[str, str]:
    """One API key per matrix column, all in one account (plus the operator)."""
    tenant = new_tenant(stratus, "Matrix")
    namespace_id = create_active_namespace(stratus, tenant, "matrix")
    keys = {"operator": stratus.operator_key, AccountRole.OWNER.value: tenant.api_key}
    for role in AccountRole:
        if role is not AccountRole.OWNER:
            _, keys[role.value] = user_with_key(
                stratus, tenant.api_key, f"{role.value}@matrix.example", role.value
            )
    _, keys[SCOPED_SERVICE_ACCOUNT] = service_account_with_key(
        stratus,
        tenant.api_key,
        {"name": "scoped", "namespace_scope": {"namespace_id": namespace_id, "permission": "read"}},
    )
    return keys


@pytest.mark.parametrize("column", COLUMNS)
def test_running_api_agrees_with_the_matrix(
    stratus: StratusUp, callers: dict[str, str], column: str
) -> None:
    """Every route, called by this column's principal on ids that do not exist and with an
    empty body: where the document says ``denied`` it is 403 forbidden before anything else;
    otherwise the policy lets the request through (it then fails on the missing row or body,
    never with 401/403)."""
    documented = _documented_matrix()
    mismatches = []
    with http(stratus, None) as client:
        for route in PROTECTED:
            assert route.action is not None
            path = re.sub(r"\{[^}]+\}", "does-not-exist", route.path)
            response = client.request(
                route.method,
                path.removeprefix("/api/v1"),
                headers={"Authorization": f"Bearer {callers[column]}"},
                json={} if route.method == "POST" else None,
            )
            expected = documented[(route.method, route.path)][column]
            if expected == "denied":
                if response.status_code != 403 or not response.json()["type"].endswith(
                    "/forbidden"
                ):
                    mismatches.append((route.method, route.path, expected, response.status_code))
            elif response.status_code in (401, 403):
                mismatches.append((route.method, route.path, expected, response.status_code))
    assert not mismatches, mismatches


def test_namespace_permission_decides_per_namespace(
    stratus: StratusUp, callers: dict[str, str]
) -> None:
    """The scoped service account reads its namespace but may not change it (403); a `read`
    user without a grant does not see it (404)."""
    with http(stratus, callers[SCOPED_SERVICE_ACCOUNT]) as client:
        listed = client.get("/namespaces").json()["namespaces"]
        assert [namespace["name"] for namespace in listed] == ["matrix"]
        namespace = listed[0]
        assert client.get(f"/namespaces/{namespace['id']}").status_code == 200
        assert client.get(f"/namespaces/{namespace['id']}/insights").status_code == 200
        response = client.delete(f"/namespaces/{namespace['id']}")
        assert_problem(response, 403, "forbidden")
    with http(stratus, callers["read"]) as client:
        assert client.get("/namespaces").json()["namespaces"] == []
        assert_problem(client.get(f"/namespaces/{namespace['id']}"), 404, "not-found")
        assert_problem(client.get(f"/namespaces/{namespace['id']}/insights"), 404, "not-found")
