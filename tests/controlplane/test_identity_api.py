"""Users, roles, namespace permissions, service accounts and the audit log through the HTTP
API, with the exact refusal for each guard."""

from __future__ import annotations

from typing import Any

import pytest
from identity_support import (
    assert_problem,
    invite,
    service_account_with_key,
    user_with_key,
)
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "People")


@pytest.fixture(scope="module")
def namespace_id(stratus: StratusUp, tenant: Tenant) -> str:
    return create_active_namespace(stratus, tenant, "people")


def _owner_id(stratus: StratusUp, tenant: Tenant) -> str:
    with http(stratus, tenant.api_key) as client:
        identity_id: str = client.get("/current-identity").json()["id"]
    return identity_id


def test_invite_list_get_update_delete(stratus: StratusUp, tenant: Tenant) -> None:
    user = invite(stratus, tenant.api_key, "Ada@People.example", "developer")
    assert user["email"] == "ada@people.example"
    assert user["account_role"] == "developer"
    assert user["namespace_permissions"] == []
    with http(stratus, tenant.api_key) as client:
        emails = [u["email"] for u in client.get("/users").json()["users"]]
        assert "ada@people.example" in emails
        assert "owner@people.example" in emails
        assert client.get(f"/users/{user['id']}").json()["email"] == "ada@people.example"
        updated = client.post(
            f"/users/{user['id']}",
            json={"resource_version": user["resource_version"], "account_role": "admin"},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["account_role"] == "admin"
        stale = client.post(
            f"/users/{user['id']}",
            json={"resource_version": user["resource_version"], "account_role": "read"},
        )
        assert_problem(stale, 409, "resource-version-mismatch")
        assert client.delete(f"/users/{user['id']}").status_code == 204
        assert_problem(client.get(f"/users/{user['id']}"), 404, "not-found")


@pytest.mark.parametrize(
    ("body", "status", "problem", "field"),
    [
        ({"email": "not-an-email", "account_role": "read"}, 400, "invalid-field", "email"),
        ({"email": "x@people.example", "account_role": "emperor"}, 422, "malformed-request", None),
        ({"email": "owner@people.example", "account_role": "read"}, 409, "already-exists", "email"),
    ],
    ids=["bad-email", "unknown-role", "duplicate"],
)
def test_invite_refuses_bad_input(
    stratus: StratusUp,
    tenant: Tenant,
    body: dict[str, str],
    status: int,
    problem: str,
    field: str | None,
) -> None:
    with http(stratus, tenant.api_key) as client:
        response = client.post("/users", json=body)
    assert_problem(response, status, problem)
    if field is not None:
        assert response.json()["field"] == field


def test_last_owner_cannot_be_demoted_or_deleted(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Solo")
    owner_id = _owner_id(stratus, tenant)
    with http(stratus, tenant.api_key) as client:
        owner = client.get(f"/users/{owner_id}").json()
        demote = client.post(
            f"/users/{owner_id}",
            json={"resource_version": owner["resource_version"], "account_role": "admin"},
        )
        assert_problem(demote, 409, "last-owner")
        assert_problem(client.delete(f"/users/{owner_id}"), 409, "last-owner")
        # With a second owner, the first may step down.
        invite(stratus, tenant.api_key, "second@solo.example", "owner")
        demote = client.post(
            f"/users/{owner_id}",
            json={"resource_version": owner["resource_version"], "account_role": "admin"},
        )
        assert demote.status_code == 200, demote.text


def test_only_owners_manage_owners(stratus: StratusUp, tenant: Tenant) -> None:
    _, admin_key = user_with_key(stratus, tenant.api_key, "admin@people.example", "admin")
    owner_id = _owner_id(stratus, tenant)
    with http(stratus, admin_key) as client:
        response = client.post(
            "/users", json={"email": "boss@people.example", "account_role": "owner"}
        )
        assert_problem(response, 403, "forbidden")
        assert_problem(client.delete(f"/users/{owner_id}"), 403, "forbidden")
        owner = client.get(f"/users/{owner_id}").json()
        demote = client.post(
            f"/users/{owner_id}",
            json={"resource_version": owner["resource_version"], "account_role": "read"},
        )
        assert_problem(demote, 403, "forbidden")
        # Admins manage everyone else.
        response = client.post(
            "/users", json={"email": "helper@people.example", "account_role": "read"}
        )
        assert response.status_code == 201


def test_deleted_users_keys_stop_working(stratus: StratusUp, tenant: Tenant) -> None:
    user, key = user_with_key(stratus, tenant.api_key, "leaver@people.example", "developer")
    with http(stratus, key) as client:
        assert client.get("/current-identity").status_code == 200
    with http(stratus, tenant.api_key) as owner:
        assert owner.delete(f"/users/{user['id']}").status_code == 204
    with http(stratus, key) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")


def test_namespace_permissions(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> None:
    """A `read` user sees a namespace only with a permission; `read` reads it, `admin` may
    grant access on it; removing the permission hides it again."""
    reader, reader_key = user_with_key(stratus, tenant.api_key, "reader@people.example", "read")
    other = invite(stratus, tenant.api_key, "other@people.example", "read")
    access = f"/namespaces/{namespace_id}/users/{reader['id']}/access"
    with http(stratus, reader_key) as client:
        assert client.get("/namespaces").json()["namespaces"] == []
        assert_problem(client.get(f"/namespaces/{namespace_id}"), 404, "not-found")
    with http(stratus, tenant.api_key) as owner:
        granted = owner.post(access, json={"permission": "read"})
        assert granted.status_code == 200, granted.text
        assert granted.json()["namespace_permissions"] == [
            {"namespace_id": namespace_id, "permission": "read"}
        ]
    with http(stratus, reader_key) as client:
        assert [n["id"] for n in client.get("/namespaces").json()["namespaces"]] == [namespace_id]
        assert client.get(f"/namespaces/{namespace_id}").status_code == 200
        identity = client.get("/current-identity").json()
        assert identity["namespace_permissions"] == [
            {"namespace_id": namespace_id, "permission": "read"}
        ]
        response = client.post(
            f"/namespaces/{namespace_id}/users/{other['id']}/access", json={"permission": "read"}
        )
        assert_problem(response, 403, "forbidden")
        namespace = client.get(f"/namespaces/{namespace_id}").json()
        response = client.post(
            f"/namespaces/{namespace_id}",
            json={"resource_version": namespace["resource_version"], "retention_days": 9},
        )
        assert_problem(response, 403, "forbidden")
    with http(stratus, tenant.api_key) as owner:
        assert owner.post(access, json={"permission": "admin"}).status_code == 200
    with http(stratus, reader_key) as client:
        response = client.post(
            f"/namespaces/{namespace_id}/users/{other['id']}/access", json={"permission": "write"}
        )
        assert response.status_code == 200, response.text
    with http(stratus, tenant.api_key) as owner:
        removed = owner.post(access, json={"permission": None})
        assert removed.json()["namespace_permissions"] == []
    with http(stratus, reader_key) as client:
        assert_problem(client.get(f"/namespaces/{namespace_id}"), 404, "not-found")


def test_service_accounts_crud_and_scope(
    stratus: StratusUp, tenant: Tenant, namespace_id: str
) -> None:
    scoped, scoped_key = service_account_with_key(
        stratus,
        tenant.api_key,
        {
            "name": "worker-ci",
            "description": "deploys workers",
            "namespace_scope": {"namespace_id": namespace_id, "permission": "write"},
        },
    )
    assert scoped["account_role"] is None
    assert scoped["namespace_scope"] == {"namespace_id": namespace_id, "permission": "write"}
    with http(stratus, scoped_key) as client:
        identity = client.get("/current-identity").json()
        assert identity["namespace_scope"] == namespace_id
        assert client.get(f"/namespaces/{namespace_id}").status_code == 200
        assert_problem(client.get("/service-accounts"), 403, "forbidden")
        assert_problem(client.get("/users"), 403, "forbidden")
    with http(stratus, tenant.api_key) as owner:
        listed = owner.get("/service-accounts").json()["service_accounts"]
        assert "worker-ci" in [sa["name"] for sa in listed]
        updated = owner.post(
            f"/service-accounts/{scoped['id']}",
            json={"resource_version": scoped["resource_version"], "namespace_permission": "read"},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["namespace_scope"]["permission"] == "read"
        assert owner.delete(f"/service-accounts/{scoped['id']}").status_code == 204
        assert_problem(owner.get(f"/service-accounts/{scoped['id']}"), 404, "not-found")
    with http(stratus, scoped_key) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")


@pytest.mark.parametrize(
    ("body", "status", "problem", "field"),
    [
        ({"name": "a"}, 400, "invalid-field", "account_role"),
        ({"name": "a", "account_role": "owner"}, 400, "invalid-field", "account_role"),
        (
            {
                "name": "a",
                "account_role": "read",
                "namespace_scope": {"namespace_id": "x", "permission": "read"},
            },
            400,
            "invalid-field",
            "account_role",
        ),
        (
            {"name": "a", "namespace_scope": {"namespace_id": "nope.zzzzz", "permission": "read"}},
            404,
            "not-found",
            "namespace_scope.namespace_id",
        ),
        ({"name": "", "account_role": "read"}, 400, "invalid-field", "name"),
    ],
    ids=["neither", "owner-role", "both", "unknown-namespace", "empty-name"],
)
def test_service_account_refuses_bad_input(
    stratus: StratusUp,
    tenant: Tenant,
    body: dict[str, Any],
    status: int,
    problem: str,
    field: str,
) -> None:
    with http(stratus, tenant.api_key) as client:
        response = client.post("/service-accounts", json=body)
    assert_problem(response, status, problem)
    assert response.json()["field"] == field


def test_audit_log_records_mutations_newest_first(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Audited")
    user = invite(stratus, tenant.api_key, "a@audited.example", "read")
    with http(stratus, tenant.api_key) as client:
        client.delete(f"/users/{user['id']}")
        first = client.get("/audit-logs", params={"page_size": 2})
        assert first.status_code == 200, first.text
        page = first.json()
        assert [event["action"] for event in page["audit_logs"]] == [
            "user.delete",
            "user.create",
        ]
        assert page["audit_logs"][0]["actor"] == "user:owner@audited.example"
        assert page["audit_logs"][0]["target"] == user["id"]
        assert page["audit_logs"][0]["request_id"]
        rest = client.get(
            "/audit-logs", params={"page_size": 100, "page_token": page["next_page_token"]}
        ).json()
        assert [event["action"] for event in rest["audit_logs"]] == ["account.create"]
        assert rest["next_page_token"] == ""
        assert_problem(
            client.get("/audit-logs", params={"page_token": "zzz"}), 400, "invalid-field"
        )
    _, reader_key = user_with_key(stratus, tenant.api_key, "r@audited.example", "read")
    with http(stratus, reader_key) as client:
        assert_problem(client.get("/audit-logs"), 403, "forbidden")


def test_developer_administers_the_namespaces_it_creates(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Builders")
    _, developer_key = user_with_key(stratus, tenant.api_key, "dev@builders.example", "developer")
    developer = Tenant(tenant.account_id, developer_key, tenant.ca, tenant.client_cert)
    namespace_id = create_active_namespace(stratus, developer, "built")
    with http(stratus, developer_key) as client:
        identity = client.get("/current-identity").json()
        assert identity["namespace_permissions"] == [
            {"namespace_id": namespace_id, "permission": "admin"}
        ]
        assert [n["id"] for n in client.get("/namespaces").json()["namespaces"]] == [namespace_id]
