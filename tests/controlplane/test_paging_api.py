"""Every list route pages the same way (controlplane/kit/paging.py): keyset pages on a stable
order, so a walk returns every row that exists throughout it exactly once even while rows are
inserted; tokens are sealed and bound to the list, the account and the filters; the typed
client and the CLI follow the pages."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import httpx
import pytest
from identity_support import expiry, invite
from support import StratusUp, Tenant, http, new_tenant

from controlplane.kit.paging import TOKEN_REFUSAL

# Every list route a tenant's owner reads, with its rows' key.
TENANT_LISTS = {
    "/namespaces": "namespaces",
    "/users": "users",
    "/groups": "groups",
    "/service-accounts": "service_accounts",
    "/api-keys": "api_keys",
    "/invoices": "invoices",
    "/billing/credits": "credits",
    "/operations": "operations",
    "/audit-logs": "audit_logs",
}


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    tenant = new_tenant(stratus, "Pager")
    for index in range(5):
        invite(stratus, tenant.api_key, f"u{index}@pager.example", "read")
    with http(stratus, tenant.api_key) as client:
        for name in ("g2", "g1", "g3"):
            assert client.post("/groups", json={"name": name}).status_code == 201
    return tenant


@pytest.fixture(scope="module")
def other(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "Pagerb")


def _problem(response: httpx.Response, field: str, detail: str) -> None:
    assert response.status_code == 400, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert problem["type"].rsplit("/", 1)[1] == "invalid-field"
    assert problem["field"] == field
    assert detail in problem["detail"]


def _walk(
    client: httpx.Client, path: str, key: str, params: dict[str, Any], between: Any = None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    token = ""
    while True:
        page = client.get(path, params={**params, "page_token": token} if token else params)
        assert page.status_code == 200, page.text
        rows += page.json()[key]
        token = page.json()["next_page_token"]
        if not token:
            return rows
        if between is not None:
            between()


def test_users_pages_cover_every_row_once_while_rows_are_inserted(
    stratus: StratusUp,
) -> None:
    """Users by email: new users sorting before and after the walk's position appear at most
    once, every user present from the start exactly once, in order."""
    tenant = new_tenant(stratus, "Pagewalk")
    for index in range(6):
        invite(stratus, tenant.api_key, f"m{index}@pagewalk.example", "read")
    inserted = iter(["a0", "z0", "a1", "z1", "a2", "z2", "a3", "z3"])

    def insert() -> None:
        invite(stratus, tenant.api_key, f"{next(inserted)}@pagewalk.example", "read")

    with http(stratus, tenant.api_key) as client:
        before = {u["email"] for u in client.get("/users").json()["users"]}
        walked = [u["email"] for u in _walk(client, "/users", "users", {"page_size": 2}, insert)]
    assert max(Counter(walked).values()) == 1
    assert before <= set(walked)
    assert walked == sorted(walked)


def test_api_keys_newest_first_pages_under_inserts(stratus: StratusUp, tenant: Tenant) -> None:
    """API keys page newest first on (created_at, id): keys created mid-walk never repeat or
    push an older key off the walk."""
    with http(stratus, tenant.api_key) as client:
        for index in range(5):
            made = client.post("/api-keys", json={"display_name": f"k{index}", "expiry": expiry()})
            assert made.status_code == 201, made.text
        before = {k["id"] for k in client.get("/api-keys").json()["api_keys"]}

        def insert() -> None:
            made = client.post("/api-keys", json={"display_name": "mid", "expiry": expiry()})
            assert made.status_code == 201, made.text

        walked = _walk(client, "/api-keys", "api_keys", {"page_size": 2}, insert)
    ids = [key["id"] for key in walked]
    assert max(Counter(ids).values()) == 1
    assert before == set(ids)  # newer keys sort before the walk's position: none is returned
    moments = [key["created_at"] for key in walked]
    assert moments == sorted(moments, reverse=True)


@pytest.mark.sqlite_only
def test_every_tenant_list_pages(stratus: StratusUp, tenant: Tenant) -> None:
    """Each list answers ``next_page_token`` ("" on the last page) and walks to the same rows
    a page at a time as in one page."""
    with http(stratus, tenant.api_key) as client:
        for path, key in TENANT_LISTS.items():
            whole = client.get(path, params={"page_size": 1000})
            assert whole.status_code == 200, (path, whole.text)
            assert whole.json()["next_page_token"] == ""
            assert _walk(client, path, key, {"page_size": 1}) == whole.json()[key], path


@pytest.mark.sqlite_only
def test_operator_lists_page(stratus: StratusUp) -> None:
    with stratus.operator() as operator:
        cells = list(operator.iter_cells(page_size=1))
        assert [c.id for c in cells] == sorted(c.id for c in cells)
        assert len(list(operator.iter_gateways(page_size=1))) >= 1


@pytest.mark.sqlite_only
@pytest.mark.parametrize("size", [0, -1, 1001])
def test_page_size_out_of_range_is_refused(stratus: StratusUp, tenant: Tenant, size: int) -> None:
    with http(stratus, tenant.api_key) as client:
        for path in TENANT_LISTS:
            response = client.get(path, params={"page_size": size})
            _problem(response, "page_size", f"page_size must be 1-1000, got {size}")


@pytest.mark.sqlite_only
def test_tokens_are_refused_on_other_lists_accounts_and_filters(
    stratus: StratusUp, tenant: Tenant, other: Tenant
) -> None:
    with http(stratus, tenant.api_key) as client:
        token = client.get("/users", params={"page_size": 1}).json()["next_page_token"]
        assert token
        # Same list, same account, same filters: accepted.
        assert client.get("/users", params={"page_size": 1, "page_token": token}).is_success
        # Another list of the same account.
        for path in ("/service-accounts", "/api-keys", "/audit-logs", "/operations"):
            _problem(client.get(path, params={"page_token": token}), "page_token", TOKEN_REFUSAL)
        # The same list with other filters.
        filtered = client.get("/users", params={"page_token": token, "email": "u1@pager.example"})
        _problem(filtered, "page_token", TOKEN_REFUSAL)
        # Edited or forged tokens.
        for forged in (token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), "v1:AAAA", "zzz"):
            _problem(client.get("/users", params={"page_token": forged}), "page_token", "")
        _problem(
            client.get("/users", params={"page_token": "v1:" + "A" * 3000}),
            "page_token",
            TOKEN_REFUSAL,
        )
    # The same list of another account.
    with http(stratus, other.api_key) as client:
        _problem(client.get("/users", params={"page_token": token}), "page_token", TOKEN_REFUSAL)


@pytest.mark.sqlite_only
def test_filters(stratus: StratusUp, tenant: Tenant) -> None:
    with http(stratus, tenant.api_key) as client:
        users = client.get("/users", params={"email": "U3@pager.example"}).json()["users"]
        assert [u["email"] for u in users] == ["u3@pager.example"]
        _problem(client.get("/users", params={"email": "nope"}), "email", "not an email")
        for name in ("batch-1", "batch-2", "other"):
            made = client.post("/service-accounts", json={"name": name, "account_role": "read"})
            assert made.status_code == 201, made.text
        found = client.get("/service-accounts", params={"name": "batch-"}).json()
        assert [sa["name"] for sa in found["service_accounts"]] == ["batch-1", "batch-2"]
        key = client.post("/api-keys", json={"display_name": "off", "expiry": expiry()}).json()
        assert client.post(f"/api-keys/{key['api_key']['id']}/disable").is_success
        disabled = client.get("/api-keys", params={"state": "disabled"}).json()["api_keys"]
        assert [k["id"] for k in disabled] == [key["api_key"]["id"]]
        enabled = client.get("/api-keys", params={"state": "enabled"}).json()["api_keys"]
        assert key["api_key"]["id"] not in {k["id"] for k in enabled}
        _problem(client.get("/invoices", params={"month": "2026-13"}), "month", "YYYY-MM")
        _problem(client.get("/invoices", params={"status": "PAID"}), "status", "DRAFT, FINALIZED")
        assert client.get("/invoices", params={"month": "2001-01"}).json()["invoices"] == []
        assert client.get("/namespaces", params={"name": "zz"}).json()["namespaces"] == []
        done = client.get("/operations", params={"state": "FULFILLED", "type": "x.y"}).json()
        assert done == {"operations": [], "next_page_token": ""}


@pytest.mark.sqlite_only
def test_client_and_cli_follow_pages(stratus: StratusUp, tenant: Tenant) -> None:
    with tenant.client(stratus) as client:
        emails = [user.email for user in client.iter_users(page_size=2)]
        assert emails == sorted(emails)
        assert {f"u{i}@pager.example" for i in range(5)} <= set(emails)
        assert len(list(client.iter_users(page_size=2, limit=3))) == 3
    listed = stratus.cli(
        "--output", "json", "user", "list", "--page-size", "2", api_key=tenant.api_key
    )
    assert listed.returncode == 0, listed.stderr
    assert [u["email"] for u in json.loads(listed.stdout)["users"]] == emails
    limited = stratus.cli(
        "user", "list", "--page-size", "2", "--limit", "3", api_key=tenant.api_key
    )
    assert limited.returncode == 0, limited.stderr
    assert len(limited.stdout.splitlines()) == 3


@pytest.mark.sqlite_only
def test_audit_list_in_the_client_and_cli(stratus: StratusUp, tenant: Tenant) -> None:
    """``stratus audit list`` and ``iter_audit_logs`` follow pages with the filters: the five
    invitations of the fixture, newest first."""
    with tenant.client(stratus) as client:
        invited = list(client.iter_audit_logs(action="user.create", page_size=2))
    assert [event.action for event in invited] == ["user.create"] * 5
    assert [event.id for event in invited] == sorted((e.id for e in invited), reverse=True)
    listed = stratus.cli(
        "--output", "json", "audit", "list", "--action", "user.create", "--page-size", "2",
        "--since", invited[-1].at.isoformat(), api_key=tenant.api_key,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert [e["id"] for e in json.loads(listed.stdout)["audit_logs"]] == [e.id for e in invited]
    refused = stratus.cli("audit", "list", "--page-size", "0", api_key=tenant.api_key)
    assert refused.returncode == 2
