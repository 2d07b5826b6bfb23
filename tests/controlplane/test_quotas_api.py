"""Per-account quotas through the HTTP API and the CLI: Temporal Cloud-like defaults, set by the
operator (audited), read by the account's admins; every refusal names the quota, its limit and
the usage; concurrent creates at the limit never both pass."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from identity_support import expiry, invite, user_with_key
from product_constants import PROBLEM
from support import StratusUp, Tenant, http, new_tenant


def _set(stratus: StratusUp, account_id: str, **quotas: int | None) -> dict[str, Any]:
    with http(stratus, stratus.operator_key) as operator:
        response = operator.post(f"/accounts/{account_id}/quotas", json=quotas)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _limits(body: dict[str, Any]) -> dict[str, int]:
    return {quota["quota"]: quota["limit"] for quota in body["quotas"]}


def _assert_quota_problem(
    response: httpx.Response, status: int, slug: str, quota: str, limit: int, usage: int
) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == PROBLEM + slug
    assert (problem["quota"], problem["limit"], problem["usage"]) == (quota, limit, usage)
    assert f"quota {quota} exceeded" in problem["detail"]
    assert f"{usage} " in problem["detail"]
    assert f"limit is {limit}" in problem["detail"]


async def _concurrently(
    stratus: StratusUp, api_key: str, requests: list[tuple[str, dict[str, Any]]]
) -> list[httpx.Response]:
    """Send the requests at once, each on its own connection."""
    headers = {"Authorization": f"Bearer {api_key}"}

    async def send(path: str, body: dict[str, Any]) -> httpx.Response:
        async with httpx.AsyncClient(
            base_url=stratus.api_url + "/api/v1", headers=headers, timeout=60
        ) as client:
            return await client.post(path, json=body)

    return list(await asyncio.gather(*(send(path, body) for path, body in requests)))


def _namespace_body(tenant: Tenant, name: str) -> dict[str, Any]:
    return {"name": name, "accepted_client_ca": tenant.ca.cert_pem.decode(), "retention_days": 1}


# The Temporal Cloud-like defaults, pinned here on purpose: this is the specification
# the product's defaults are checked against, not a copy of them.
DEFAULTS = {
    "namespaces": 10,
    "users": 300,
    "service_accounts": 100,
    "api_keys_per_principal": 20,
    "concurrent_operations": 10,
    "tags_per_namespace": 10,
    "groups": 100,
}


def test_defaults_are_temporal_cloud_like_and_the_operator_sets_them(stratus: StratusUp) -> None:
    tenant, other = new_tenant(stratus, "Quoted"), new_tenant(stratus, "Nosy")
    path = f"/accounts/{tenant.account_id}/quotas"
    with http(stratus, tenant.api_key) as owner:
        shown = owner.get(path).json()
    assert _limits(shown) == DEFAULTS
    assert all(quota["is_default"] for quota in shown["quotas"])
    usage = {quota["quota"]: quota["usage"] for quota in shown["quotas"]}
    assert usage["users"] == 1
    assert usage["api_keys_per_principal"] == 1

    changed = _set(stratus, tenant.account_id, namespaces=25, concurrent_operations=3)
    assert _limits(changed) == {**DEFAULTS, "namespaces": 25, "concurrent_operations": 3}
    restored = _set(stratus, tenant.account_id, namespaces=None)
    assert _limits(restored)["namespaces"] == DEFAULTS["namespaces"]
    assert _limits(restored)["concurrent_operations"] == 3

    with http(stratus, tenant.api_key) as owner:
        # Tenants read their own quotas and cannot change them.
        refused = owner.post(path, json={"namespaces": 1000})
        assert refused.status_code == 403
        assert refused.json()["type"] == PROBLEM + "forbidden"
        assert _limits(owner.get(path).json())["namespaces"] == 10
        events = owner.get("/audit-logs", params={"page_size": 50}).json()["audit_logs"]
    sets = [event for event in events if event["action"] == "account.quotas.set"]
    assert [event["details"] for event in sets] == [
        {"namespaces": None},
        {"namespaces": 25, "concurrent_operations": 3},
    ]
    with http(stratus, other.api_key) as nosy:
        # Another account's quotas do not exist for it.
        response = nosy.get(path)
        assert response.status_code == 404
        assert response.json()["type"] == PROBLEM + "not-found"
    _, developer_key = user_with_key(stratus, tenant.api_key, "dev@quoted.example", "developer")
    with http(stratus, developer_key) as developer:
        response = developer.get(path)
        assert response.status_code == 403
        assert response.json()["type"] == PROBLEM + "forbidden"
    with http(stratus, stratus.operator_key) as operator:
        response = operator.post(path, json={"users": -1})
        assert response.status_code == 422
        assert response.json()["type"] == PROBLEM + "malformed-request"
        response = operator.post("/accounts/zzzzzz/quotas", json={"users": 5})
        assert response.status_code == 404
        assert response.json()["type"] == PROBLEM + "not-found"


def test_namespace_quota_is_409_and_race_free(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Crowded")
    _set(stratus, tenant.account_id, namespaces=2)
    with http(stratus, tenant.api_key) as owner:
        assert owner.post("/namespaces", json=_namespace_body(tenant, "one")).status_code == 202
    # Eight creates at once for the one namespace left: exactly one passes.
    responses = asyncio.run(
        _concurrently(
            stratus,
            tenant.api_key,
            [("/namespaces", _namespace_body(tenant, f"race{i}")) for i in range(8)],
        )
    )
    assert sorted(r.status_code for r in responses) == [202] + [409] * 7
    for response in responses:
        if response.status_code == 409:
            _assert_quota_problem(response, 409, "quota-exceeded", "namespaces", 2, 2)
    with http(stratus, tenant.api_key) as owner:
        assert len(owner.get("/namespaces").json()["namespaces"]) == 2


def test_concurrent_operations_quota_is_429_with_retry_after(stratus: StratusUp) -> None:
    # A fresh account's first creates also start its cell: they stay in flight for seconds,
    # far longer than the requests below take to arrive.
    tenant = new_tenant(stratus, "Hasty")
    _set(stratus, tenant.account_id, concurrent_operations=2)
    responses = asyncio.run(
        _concurrently(
            stratus,
            tenant.api_key,
            [("/namespaces", _namespace_body(tenant, f"hasty{i}")) for i in range(6)],
        )
    )
    assert sorted(r.status_code for r in responses) == [202] * 2 + [429] * 4
    for response in responses:
        if response.status_code == 429:
            _assert_quota_problem(
                response,
                429,
                "concurrent-operations-quota-exceeded",
                "concurrent_operations",
                2,
                2,
            )
            assert response.headers["retry-after"] == "5"
    with tenant.client(stratus) as owner:
        for response in responses:
            if response.status_code == 202:
                done = owner.wait_for_operation(
                    response.json()["async_operation"]["id"], timeout=120
                )
                assert done.state == "FULFILLED", done.failure_reason
    # Once they have ended, the account may start operations again.
    with http(stratus, tenant.api_key) as owner:
        assert owner.post("/namespaces", json=_namespace_body(tenant, "later")).status_code == 202


def test_users_and_service_accounts_quotas_are_race_free(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Staffed")
    _set(stratus, tenant.account_id, users=3, service_accounts=1)
    invite(stratus, tenant.api_key, "second@staffed.example", "read")
    responses = asyncio.run(
        _concurrently(
            stratus,
            tenant.api_key,
            [
                ("/users", {"email": f"u{i}@staffed.example", "account_role": "read"})
                for i in range(6)
            ],
        )
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    for response in responses:
        if response.status_code == 409:
            _assert_quota_problem(response, 409, "quota-exceeded", "users", 3, 3)

    responses = asyncio.run(
        _concurrently(
            stratus,
            tenant.api_key,
            [("/service-accounts", {"name": f"bot{i}", "account_role": "read"}) for i in range(6)],
        )
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    for response in responses:
        if response.status_code == 409:
            _assert_quota_problem(response, 409, "quota-exceeded", "service_accounts", 1, 1)


def test_api_keys_per_principal_count_disabled_keys_and_are_race_free(
    stratus: StratusUp,
) -> None:
    tenant = new_tenant(stratus, "Keyed")
    _set(stratus, tenant.account_id, api_keys_per_principal=3)
    key_body = {"display_name": "k", "expiry": expiry()}
    with http(stratus, tenant.api_key) as owner:
        # The owner's bootstrap key is the first; a disabled key still counts.
        extra = owner.post("/api-keys", json=key_body).json()["api_key"]["id"]
        assert owner.post(f"/api-keys/{extra}/disable").status_code == 200
    responses = asyncio.run(
        _concurrently(stratus, tenant.api_key, [("/api-keys", key_body) for _ in range(6)])
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    for response in responses:
        if response.status_code == 409:
            _assert_quota_problem(response, 409, "quota-exceeded", "api_keys_per_principal", 3, 3)
    with http(stratus, tenant.api_key) as owner:
        # Enabling the disabled key again needs no room: it was counted all along.
        assert owner.post(f"/api-keys/{extra}/enable").status_code == 200
        # Deleting one makes room.
        assert owner.delete(f"/api-keys/{extra}").status_code == 204
        assert owner.post("/api-keys", json=key_body).status_code == 201


def test_cli_reads_and_sets_quotas(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Clique")
    changed = stratus.cli(
        "-o", "json", "account", "quotas", "set", "--account", tenant.account_id,
        "--users", "42", "--concurrent-operations", "4",
        api_key=stratus.operator_key,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert _limits(json.loads(changed.stdout)) == {
        **DEFAULTS,
        "users": 42,
        "concurrent_operations": 4,
    }
    own = stratus.cli("account", "quotas", "get", api_key=tenant.api_key)
    assert own.returncode == 0, own.stderr
    assert "users: 1 used of 42 (set by operator)" in own.stdout
    assert f"namespaces: 0 used of {DEFAULTS['namespaces']} (default)" in own.stdout
    reset = stratus.cli(
        "-o", "json", "account", "quotas", "set", "--account", tenant.account_id,
        "--reset", "users", api_key=stratus.operator_key,
    )  # fmt: skip
    assert reset.returncode == 0, reset.stderr
    assert _limits(json.loads(reset.stdout))["users"] == DEFAULTS["users"]
    refused = stratus.cli(
        "account", "quotas", "set", "--account", tenant.account_id, "--users", "1000",
        api_key=tenant.api_key,
    )  # fmt: skip
    assert refused.returncode == 1
    assert f"[403 {PROBLEM}forbidden]" in refused.stderr
