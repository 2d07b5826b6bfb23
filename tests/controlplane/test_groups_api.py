"""User groups through the HTTP API: CRUD, paging, members, namespace permissions, the exact
refusal of each guard (validation, escalation, foreign ids, quota), and a member's effective
access changing at once as it joins and leaves (API keys, same process, credential cache)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from identity_support import assert_problem, invite, user_with_key
from support import StratusUp, Tenant, create_active_namespace, http, new_tenant


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "Grouped")


@pytest.fixture(scope="module")
def namespace_id(stratus: StratusUp, tenant: Tenant) -> str:
    return create_active_namespace(stratus, tenant, "grouped")


def _create(client: httpx.Client, **body: Any) -> dict[str, Any]:
    response = client.post("/groups", json=body)
    assert response.status_code == 201, response.text
    group: dict[str, Any] = response.json()
    return group


def _members(client: httpx.Client, group_id: str, **body: list[str]) -> httpx.Response:
    return client.post(f"/groups/{group_id}/members", json=body)


def test_create_get_update_members_delete_audited(stratus: StratusUp, tenant: Tenant) -> None:
    """The whole life of a group, on both databases; every mutation is in the audit log."""
    ada = invite(stratus, tenant.api_key, "ada@grouped.example", "read")
    with http(stratus, tenant.api_key) as client:
        group = _create(client, name=" Platform ", description="the platform team")
        assert group["name"] == "Platform"
        assert (group["account_role"], group["member_count"], group["external_id"]) == (
            None,
            0,
            None,
        )
        assert group["namespace_permissions"] == []
        assert client.get(f"/groups/{group['id']}").json() == group

        updated = client.post(
            f"/groups/{group['id']}",
            json={"account_role": "developer", "resource_version": group["resource_version"]},
        )
        assert updated.status_code == 200, updated.text
        assert updated.json()["account_role"] == "developer"
        assert updated.json()["description"] == "the platform team"
        stale = client.post(
            f"/groups/{group['id']}",
            json={"name": "Other", "resource_version": group["resource_version"]},
        )
        assert_problem(stale, 409, "resource-version-mismatch")
        assert stale.json()["field"] == "resource_version"

        joined = _members(client, group["id"], add=[ada["id"], ada["id"]])
        assert joined.status_code == 200, joined.text
        assert joined.json()["member_count"] == 1
        again = _members(client, group["id"], add=[ada["id"]])
        assert again.json()["resource_version"] == joined.json()["resource_version"]
        listed = client.get(f"/groups/{group['id']}/members").json()
        assert listed == {
            "members": [{"user_id": ada["id"], "email": ada["email"], "source": "manual"}],
            "next_page_token": "",
        }
        user = client.get(f"/users/{ada['id']}").json()
        assert user["groups"] == [{"id": group["id"], "name": "Platform"}]

        # Without an account role (null) the group keeps only its namespace permissions.
        cleared = client.post(f"/groups/{group['id']}", json={"account_role": None})
        assert cleared.json()["account_role"] is None

        current = client.get(f"/groups/{group['id']}").json()
        deleted = client.delete(
            f"/groups/{group['id']}", params={"resource_version": current["resource_version"]}
        )
        assert deleted.status_code == 204, deleted.text
        assert_problem(client.get(f"/groups/{group['id']}"), 404, "not-found")
        assert client.get(f"/users/{ada['id']}").json()["groups"] == []
        actions = {
            event["action"]
            for event in client.get("/audit-logs", params={"page_size": 50}).json()["audit_logs"]
            if event["target"] == group["id"]
        }
    assert actions == {"group.create", "group.update", "group.members.update", "group.delete"}


@pytest.mark.sqlite_only
def test_pages_by_name_with_a_prefix_filter(stratus: StratusUp, tenant: Tenant) -> None:
    with http(stratus, tenant.api_key) as client:
        for name in ("paged-c", "paged-a", "paged-b", "unpaged"):
            _create(client, name=name)
        seen: list[str] = []
        token = ""
        while True:
            page = client.get(
                "/groups", params={"name": "paged-", "page_size": 2, "page_token": token}
            ).json()
            seen += [group["name"] for group in page["groups"]]
            token = page["next_page_token"]
            if not token:
                break
        assert seen == ["paged-a", "paged-b", "paged-c"]
        wrong = client.get("/groups", params={"name": "un", "page_token": "x" * 40})
        assert_problem(wrong, 400, "invalid-field")
        assert wrong.json()["field"] == "page_token"


@pytest.mark.sqlite_only
def test_members_page_by_email(stratus: StratusUp, tenant: Tenant) -> None:
    users = [invite(stratus, tenant.api_key, f"m{i}@grouped.example", "read") for i in (2, 1)]
    with http(stratus, tenant.api_key) as client:
        group = _create(client, name="two members")
        _members(client, group["id"], add=[user["id"] for user in users])
        first = client.get(f"/groups/{group['id']}/members", params={"page_size": 1}).json()
        second = client.get(
            f"/groups/{group['id']}/members",
            params={"page_size": 1, "page_token": first["next_page_token"]},
        ).json()
    assert [m["email"] for m in first["members"] + second["members"]] == [
        "m1@grouped.example",
        "m2@grouped.example",
    ]
    assert second["next_page_token"] == ""


@pytest.mark.sqlite_only
@pytest.mark.parametrize(
    ("body", "status", "problem", "field"),
    [
        ({"name": ""}, 400, "invalid-field", "name"),
        ({"name": "bell\x07"}, 400, "invalid-field", "name"),
        ({"name": "x" * 201}, 400, "invalid-field", "name"),
        ({"name": "ok", "description": "\x1b[31m"}, 400, "invalid-field", "description"),
        ({"name": "owners", "account_role": "owner"}, 400, "invalid-field", "account_role"),
        ({"name": "emperors", "account_role": "emperor"}, 422, "malformed-request", None),
        ({"name": "Taken"}, 409, "already-exists", "name"),
    ],
    ids=["empty", "control", "long", "description", "owner-role", "unknown-role", "duplicate"],
)
def test_create_refuses_bad_input(
    stratus: StratusUp,
    tenant: Tenant,
    body: dict[str, str],
    status: int,
    problem: str,
    field: str | None,
) -> None:
    with http(stratus, tenant.api_key) as client:
        if client.get("/groups", params={"name": "Taken"}).json()["groups"] == []:
            _create(client, name="Taken")
        response = client.post("/groups", json=body)
    assert_problem(response, status, problem)
    if field is not None:
        assert response.json()["field"] == field
    if problem == "already-exists":
        assert "Taken" in response.json()["detail"]
    if field == "account_role":
        assert "cannot hold the owner role" in response.json()["detail"]


@pytest.mark.sqlite_only
def test_members_must_be_users_of_the_account(stratus: StratusUp, tenant: Tenant) -> None:
    """A foreign or unknown user id is 404 naming it, and nothing changes; add and remove of
    one id, or more than 1000 ids, are 400."""
    other = new_tenant(stratus, "GroupedOther")
    with http(stratus, other.api_key) as client:
        foreign_id = client.get("/current-identity").json()["id"]
    mine = invite(stratus, tenant.api_key, "mine@grouped.example", "read")
    with http(stratus, tenant.api_key) as client:
        group = _create(client, name="guarded members")
        for field, ids in (("add", [mine["id"], foreign_id]), ("remove", ["zz-unknown"])):
            refused = _members(client, group["id"], **{field: ids})
            assert_problem(refused, 404, "not-found")
            assert refused.json()["field"] == field
            assert ids[-1] in refused.json()["detail"]
        assert client.get(f"/groups/{group['id']}").json()["member_count"] == 0
        both = _members(client, group["id"], add=[mine["id"]], remove=[mine["id"]])
        assert_problem(both, 400, "invalid-field")
        many = _members(client, group["id"], add=[f"u{i}" for i in range(1001)])
        assert_problem(many, 400, "invalid-field")
        assert "at most 1000" in many.json()["detail"]
        # Removing a user that is no member is no change.
        assert _members(client, group["id"], remove=[mine["id"]]).status_code == 200


@pytest.mark.sqlite_only
def test_no_one_gives_a_group_more_than_it_holds(stratus: StratusUp, tenant: Tenant) -> None:
    """An admin may create an admin group (no escalation) but not a finance_admin one, nor
    change, staff or delete one the owner made; a developer may not create groups at all."""
    admin, admin_key = user_with_key(stratus, tenant.api_key, "admin@grouped.example", "admin")
    _, developer_key = user_with_key(stratus, tenant.api_key, "dev@grouped.example", "developer")
    with http(stratus, tenant.api_key) as owner:
        billing = _create(owner, name="billing", account_role="finance_admin")
    with http(stratus, admin_key) as client:
        admins = _create(client, name="admins", account_role="admin")
        assert _members(client, admins["id"], add=[admin["id"]]).status_code == 200
        refused = client.post("/groups", json={"name": "money", "account_role": "finance_admin"})
        assert_problem(refused, 403, "forbidden")
        assert refused.json()["field"] == "account_role"
        raised = client.post(f"/groups/{admins['id']}", json={"account_role": "finance_admin"})
        assert_problem(raised, 403, "forbidden")
        for response in (
            _members(client, billing["id"], add=[admin["id"]]),
            client.post(f"/groups/{billing['id']}", json={"account_role": "read"}),
            client.delete(f"/groups/{billing['id']}"),
        ):
            assert_problem(response, 403, "forbidden")
            assert "finance_admin" in response.json()["detail"]
        # Reading is fine: admins read every group.
        assert client.get(f"/groups/{billing['id']}").json()["member_count"] == 0
    with http(stratus, developer_key) as client:
        assert_problem(client.post("/groups", json={"name": "devs"}), 403, "forbidden")
        assert_problem(client.get("/groups"), 403, "forbidden")


@pytest.mark.sqlite_only
def test_group_quota(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "GroupQuota")
    with http(stratus, stratus.operator_key) as operator:
        set_quota = operator.post(f"/accounts/{tenant.account_id}/quotas", json={"groups": 1})
        assert set_quota.status_code == 200, set_quota.text
    with http(stratus, tenant.api_key) as client:
        _create(client, name="only")
        refused = client.post("/groups", json={"name": "second"})
    assert_problem(refused, 409, "quota-exceeded")
    assert refused.json()["quota"] == "groups"


@pytest.mark.sqlite_only
def test_effective_access_follows_membership_at_once(
    stratus: StratusUp, tenant: Tenant, namespace_id: str
) -> None:
    """A read user's API key reaches what its groups grant right after it joins and loses it
    right after it leaves or the group is deleted: namespace admin through the group's
    namespace permission, namespace creation through the group's developer role."""
    user, key = user_with_key(stratus, tenant.api_key, "reader@grouped.example", "read")
    tags = f"/namespaces/{namespace_id}/tags"
    body = {"tags_to_upsert": {"team": "platform"}}
    duplicate = {"name": "grouped", "accepted_client_ca": tenant.ca.cert_pem.decode()}
    with http(stratus, tenant.api_key) as owner, http(stratus, key) as reader:
        assert_problem(reader.post(tags, json=body), 404, "not-found")
        assert_problem(reader.post("/namespaces", json=duplicate), 403, "forbidden")

        group = _create(owner, name="ns admins")
        granted = owner.post(
            f"/namespaces/{namespace_id}/groups/{group['id']}/access", json={"permission": "admin"}
        )
        assert granted.status_code == 200, granted.text
        assert granted.json()["namespace_permissions"] == [
            {"namespace_id": namespace_id, "permission": "admin"}
        ]
        _members(owner, group["id"], add=[user["id"]])
        assert reader.post(tags, json=body).status_code == 200
        identity = reader.get("/current-identity").json()
        assert identity["namespace_permissions"] == [
            {"namespace_id": namespace_id, "permission": "admin"}
        ]
        _members(owner, group["id"], remove=[user["id"]])
        assert_problem(reader.post(tags, json=body), 404, "not-found")

        developers = _create(owner, name="developers", account_role="developer")
        _members(owner, developers["id"], add=[user["id"]])
        assert reader.get("/current-identity").json()["group_roles"] == ["developer"]
        # Past the policy: the name is taken (409), no longer 403.
        assert_problem(reader.post("/namespaces", json=duplicate), 409, "already-exists")

        _members(owner, group["id"], add=[user["id"]])
        assert reader.post(tags, json=body).status_code == 200
        assert owner.delete(f"/groups/{group['id']}").status_code == 204
        assert_problem(reader.post(tags, json=body), 404, "not-found")
        assert owner.delete(f"/groups/{developers['id']}").status_code == 204
        assert_problem(reader.post("/namespaces", json=duplicate), 403, "forbidden")
