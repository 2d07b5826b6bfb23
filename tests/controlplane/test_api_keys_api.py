"""API keys through the HTTP API: the token is shown once; expiry, limits and ownership are
enforced; expired, disabled, deleted, malformed and foreign keys are refused with the exact
problem."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from identity_support import (
    assert_problem,
    authenticates_at,
    expiry,
    invite,
    issue_user_key,
    service_account_with_key,
    user_with_key,
)
from support import StratusUp, Tenant, http, new_tenant

from auth import hash_api_key


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "Keyring")


def _create(key: str, stratus: StratusUp, **body: Any) -> Any:
    with http(stratus, key) as client:
        return client.post("/api-keys", json={"display_name": "k", "expiry": expiry(), **body})


def test_create_returns_the_token_once_and_it_authenticates(
    stratus: StratusUp, tenant: Tenant
) -> None:
    response = _create(tenant.api_key, stratus, display_name="laptop")
    assert response.status_code == 201, response.text
    created = response.json()
    token = created["token"]
    assert token.startswith("stratus_")
    key_id = created["api_key"]["id"]
    with http(stratus, token) as client:
        identity = client.get("/current-identity").json()
        assert identity["account_id"] == tenant.account_id
        assert identity["api_key_id"] == key_id
        assert identity["kind"] == "user"
        read_back = client.get(f"/api-keys/{key_id}").json()
    assert "token" not in read_back
    assert hash_api_key(token) not in str(read_back)
    assert read_back["display_name"] == "laptop"


@pytest.mark.parametrize(
    ("body", "status", "problem", "field"),
    [
        ({"expiry": expiry(days=731)}, 400, "invalid-field", "expiry"),
        ({"expiry": expiry(days=-1)}, 400, "invalid-field", "expiry"),
        ({"display_name": ""}, 400, "invalid-field", "display_name"),
        ({"expiry": None}, 422, "malformed-request", "expiry"),
    ],
    ids=["over-2-years", "in-the-past", "empty-name", "no-expiry"],
)
def test_create_refuses_bad_input(
    stratus: StratusUp,
    tenant: Tenant,
    body: dict[str, Any],
    status: int,
    problem: str,
    field: str,
) -> None:
    request = {"display_name": "k", "expiry": expiry(), **body}
    request = {key: value for key, value in request.items() if value is not None}
    with http(stratus, tenant.api_key) as client:
        response = client.post("/api-keys", json=request)
    assert_problem(response, status, problem)
    assert response.json()["field"] == field


def test_expiry_of_exactly_two_years_is_accepted(stratus: StratusUp, tenant: Tenant) -> None:
    response = _create(tenant.api_key, stratus, expiry=expiry(days=729.9))
    assert response.status_code == 201, response.text


def test_disabled_key_is_refused_at_once_and_enable_restores_it(
    stratus: StratusUp, tenant: Tenant
) -> None:
    created = _create(tenant.api_key, stratus).json()
    token, key_id = created["token"], created["api_key"]["id"]
    with http(stratus, tenant.api_key) as owner:
        assert owner.post(f"/api-keys/{key_id}/disable").json()["disabled"] is True
        with http(stratus, token) as client:
            assert_problem(client.get("/namespaces"), 401, "unauthenticated")
        assert owner.post(f"/api-keys/{key_id}/enable").json()["disabled"] is False
    with http(stratus, token) as client:
        assert client.get("/namespaces").status_code == 200


def test_deleted_key_is_refused_and_gone(stratus: StratusUp, tenant: Tenant) -> None:
    created = _create(tenant.api_key, stratus).json()
    token, key_id = created["token"], created["api_key"]["id"]
    with http(stratus, tenant.api_key) as owner:
        assert owner.delete(f"/api-keys/{key_id}").status_code == 204
        assert_problem(owner.get(f"/api-keys/{key_id}"), 404, "not-found")
        listed = [key["id"] for key in owner.get("/api-keys").json()["api_keys"]]
    assert key_id not in listed
    with http(stratus, token) as client:
        assert_problem(client.get("/namespaces"), 401, "unauthenticated")


def test_expired_key_is_refused(stratus: StratusUp, tenant: Tenant) -> None:
    """A key is refused from the instant it expires (the Stratus's own check with an injected
    clock, no waiting), and the API answers an expired key with 401."""
    created = _create(tenant.api_key, stratus, expiry=expiry(days=1))
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    expires_at = dt.datetime.fromisoformat(created.json()["api_key"]["expires_at"])
    assert authenticates_at(stratus, token, expires_at - dt.timedelta(microseconds=1))
    assert not authenticates_at(stratus, token, expires_at)

    user = invite(stratus, tenant.api_key, "late@keyring.example", "developer")
    two_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    stale = issue_user_key(stratus, user["id"], issued_at=two_days_ago)  # valid for one day
    with http(stratus, stale) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")


@pytest.mark.parametrize(
    "token",
    [
        "stratus_",
        "stratus_abcdefghijkl_short",
        "sk_live_abcdefghijklmnopqrstuvwxyz",
        "stratus_abcdefghijkl_" + "A" * 43,  # well-formed, unknown
    ],
    ids=["prefix-only", "short-secret", "foreign-format", "unknown"],
)
def test_malformed_or_unknown_key_is_refused(stratus: StratusUp, token: str) -> None:
    with http(stratus, token) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")


def test_a_key_with_a_tampered_secret_is_refused(stratus: StratusUp, tenant: Tenant) -> None:
    token = _create(tenant.api_key, stratus).json()["token"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    with http(stratus, tampered) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")


def test_at_most_20_keys_per_user_disabled_ones_included(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Tenkeys")
    # The owner's bootstrap key is the first one.
    for _ in range(19):
        assert _create(tenant.api_key, stratus).status_code == 201
    twenty_first = _create(tenant.api_key, stratus)
    assert_problem(twenty_first, 409, "quota-exceeded")
    assert twenty_first.json()["quota"] == "api_keys_per_principal"
    with http(stratus, tenant.api_key) as owner:
        keys = owner.get("/api-keys").json()["api_keys"]
        assert len(keys) == 20
        victim = next(key for key in keys if key["display_name"] == "k")
        # A disabled key still counts (it can be enabled again at any time)...
        owner.post(f"/api-keys/{victim['id']}/disable")
        assert_problem(_create(tenant.api_key, stratus), 409, "quota-exceeded")
        assert owner.post(f"/api-keys/{victim['id']}/enable").status_code == 200
        # ...a deleted one does not.
        assert owner.delete(f"/api-keys/{victim['id']}").status_code == 204
        assert _create(tenant.api_key, stratus).status_code == 201


def test_at_most_20_keys_per_service_account(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Robokeys")
    service_account, _ = service_account_with_key(
        stratus, tenant.api_key, {"name": "ci", "account_role": "developer"}
    )
    body = {"owner_type": "service_account", "owner_id": service_account["id"]}
    for _ in range(19):
        assert _create(tenant.api_key, stratus, **body).status_code == 201
    assert_problem(_create(tenant.api_key, stratus, **body), 409, "quota-exceeded")


def test_service_account_key_resolves_to_the_service_account(
    stratus: StratusUp, tenant: Tenant
) -> None:
    service_account, token = service_account_with_key(
        stratus, tenant.api_key, {"name": "deployer", "account_role": "developer"}
    )
    with http(stratus, token) as client:
        identity = client.get("/current-identity").json()
        assert identity["kind"] == "service_account"
        assert identity["id"] == service_account["id"]
        assert identity["account_role"] == "developer"
        # A developer may not manage users.
        assert_problem(client.get("/users"), 403, "forbidden")


def test_who_may_create_keys_for_whom(stratus: StratusUp) -> None:
    """Users create keys for themselves only; a developer cannot create keys for a service
    account, see or disable another user's keys (another owner's key is not found)."""
    tenant = new_tenant(stratus, "Owners")
    developer, developer_key = user_with_key(
        stratus, tenant.api_key, "dev@owners.example", "developer"
    )
    service_account, _ = service_account_with_key(
        stratus, tenant.api_key, {"name": "bot", "account_role": "read"}
    )
    owner_key_id = tenant.api_key.split("_")[1]
    with http(stratus, developer_key) as client:
        response = client.post(
            "/api-keys",
            json={
                "display_name": "x",
                "expiry": expiry(),
                "owner_type": "service_account",
                "owner_id": service_account["id"],
            },
        )
        assert_problem(response, 403, "forbidden")
        response = client.post(
            "/api-keys",
            json={"display_name": "x", "expiry": expiry(), "owner_type": "user", "owner_id": "x"},
        )
        assert_problem(response, 403, "forbidden")
        assert_problem(client.get(f"/api-keys/{owner_key_id}"), 404, "not-found")
        assert_problem(client.post(f"/api-keys/{owner_key_id}/disable"), 404, "not-found")
        own = client.get("/api-keys").json()["api_keys"]
        assert {key["owner_id"] for key in own} == {developer["id"]}
    with http(stratus, tenant.api_key) as owner:
        response = owner.post(
            "/api-keys",
            json={
                "display_name": "x",
                "expiry": expiry(),
                "owner_type": "user",
                "owner_id": developer["id"],
            },
        )
        assert_problem(response, 403, "forbidden")
        everyone = {key["owner_id"] for key in owner.get("/api-keys").json()["api_keys"]}
    assert developer["id"] in everyone
    assert service_account["id"] in everyone


def test_another_accounts_key_sees_nothing_of_this_account(
    stratus: StratusUp, tenant: Tenant
) -> None:
    other = new_tenant(stratus, "Stranger")
    key_id = tenant.api_key.split("_")[1]
    with http(stratus, other.api_key) as client:
        assert_problem(client.get(f"/api-keys/{key_id}"), 404, "not-found")
        assert_problem(client.delete(f"/api-keys/{key_id}"), 404, "not-found")
        assert key_id not in str(client.get("/api-keys").json())
    with http(stratus, tenant.api_key) as client:
        assert client.get("/current-identity").status_code == 200
