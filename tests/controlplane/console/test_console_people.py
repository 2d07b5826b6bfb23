"""The console's users, service accounts and API keys pages over HTTP against a real Stratus:
each page renders for the owner; an invitation, a role change, a namespace permission, a
service account and an API key made through the console are what the API then shows, audited
as through the API; the last-owner guard refuses on the page; a new key's secret is shown once
(no-store, never again, not in the audit log or the server's log) and works against the API
until it is revoked; a `read` user gets no mutating control and every POST is refused; another
account's ids answer the same 404 page as unknown ones; every POST needs the CSRF token."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from console_support import all_signed_in, csrf_token, html_page, namespace_reader, signed_in
from identity_support import service_account_with_key, user_with_key
from support import StratusUp, Tenant, http, new_tenant

NOT_FOUND_TEXT = "This page does not exist, or you do not have access to it."
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


@dataclass
class People:
    tenant: Tenant
    owner_id: str
    namespace_id: str
    owner: httpx.Client
    reader: httpx.Client
    reader_id: str
    reader_key: str


@pytest.fixture(scope="module")
def people(stratus: StratusUp) -> Iterator[People]:
    tenant = new_tenant(stratus, "Peopled")
    with tenant.client(stratus) as client:
        # Its state does not matter to permissions: no need to wait for it to turn ACTIVE.
        namespace_id = client.create_namespace(
            "staff", tenant.ca.cert_pem.decode(), retention_days=7
        ).namespace.id
    reader_id, reader_key = namespace_reader(
        stratus, tenant, namespace_id, "reader@peopled.example"
    )
    with http(stratus, tenant.api_key) as api:
        owner_id = api.get("/current-identity").json()["id"]
    with all_signed_in(stratus, tenant.api_key, reader_key) as (owner, reader):
        yield People(tenant, owner_id, namespace_id, owner, reader, reader_id, reader_key)


def _post(client: httpx.Client, path: str, **form: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf_token(client), **form})


def _secret(page: str) -> str:
    """The new key's secret, as the created page shows it."""
    found = re.search(r'id="api-key-secret" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _audit(stratus: StratusUp, tenant: Tenant) -> list[dict[str, Any]]:
    with http(stratus, tenant.api_key) as api:
        events: list[dict[str, Any]] = api.get("/audit-logs", params={"page_size": 200}).json()[
            "audit_logs"
        ]
    return events


def _api_user(stratus: StratusUp, tenant: Tenant, user_id: str) -> dict[str, Any]:
    with http(stratus, tenant.api_key) as api:
        response = api.get(f"/users/{user_id}")
    assert response.status_code == 200, response.text
    user: dict[str, Any] = response.json()
    return user


def test_each_page_renders_for_the_owner(people: People) -> None:
    users = html_page(people.owner.get("/users"), 200)
    assert "owner@peopled.example" in users
    assert "reader@peopled.example" in users
    assert 'action="/users"' in users  # the invite form
    assert 'href="/users" aria-current="page"' in users
    detail = html_page(people.owner.get(f"/users/{people.reader_id}"), 200)
    assert people.namespace_id in detail
    assert f'action="/users/{people.reader_id}/role"' in detail
    assert f"/users/{people.reader_id}/remove" in detail
    # No "remove" for oneself: the owner's own page offers none.
    own = html_page(people.owner.get(f"/users/{people.owner_id}"), 200)
    assert f"/users/{people.owner_id}/remove" not in own
    confirm = html_page(people.owner.get(f"/users/{people.reader_id}/remove"), 200)
    assert "Remove reader@peopled.example?" in confirm
    accounts = html_page(people.owner.get("/service-accounts"), 200)
    assert 'action="/service-accounts"' in accounts
    keys = html_page(people.owner.get("/api-keys"), 200)
    assert 'action="/api-keys"' in keys
    assert "you" in keys  # the owner's bootstrap key


def test_invite_a_user_through_the_same_flow_as_the_api(stratus: StratusUp, people: People) -> None:
    invited = _post(people.owner, "/users", email="new@peopled.example", account_role="developer")
    assert invited.status_code == 303, invited.text
    user_id = invited.headers["location"].removeprefix("/users/")
    user = _api_user(stratus, people.tenant, user_id)
    assert (user["email"], user["account_role"]) == ("new@peopled.example", "developer")
    events = [e for e in _audit(stratus, people.tenant) if e["action"] == "user.create"]
    assert any(
        e["target"] == user_id
        and e["actor"] == "user:owner@peopled.example"
        and e["details"]
        == {
            "email": "new@peopled.example",
            "account_role": "developer",
            "invitation_expires_at": user["invitation_expires_at"].replace("Z", "+00:00"),
        }
        for e in events
    ), events
    again = _post(people.owner, "/users", email="NEW@peopled.example", account_role="read")
    page = html_page(again, 409)
    assert 'id="email-error"' in page
    assert "new@peopled.example is already a user of this account" in page
    assert 'value="NEW@peopled.example"' in page  # what was typed stays
    bad = _post(people.owner, "/users", email="not-an-email", account_role="read")
    assert 'id="email-error"' in html_page(bad, 400)
    no_role = _post(people.owner, "/users", email="x@peopled.example", account_role="emperor")
    assert 'id="account_role-error"' in html_page(no_role, 400)


def test_change_a_role_and_the_last_owner_is_refused(stratus: StratusUp, people: People) -> None:
    invited = _post(people.owner, "/users", email="role@peopled.example", account_role="read")
    user_id = invited.headers["location"].removeprefix("/users/")
    version = _api_user(stratus, people.tenant, user_id)["resource_version"]
    changed = _post(
        people.owner, f"/users/{user_id}/role", resource_version=version, account_role="admin"
    )
    assert changed.status_code == 303, changed.text
    assert _api_user(stratus, people.tenant, user_id)["account_role"] == "admin"
    assert any(
        e["action"] == "user.update" and e["target"] == user_id
        for e in _audit(stratus, people.tenant)
    )
    stale = _post(
        people.owner, f"/users/{user_id}/role", resource_version=version, account_role="read"
    )
    assert "resource_version" in html_page(stale, 409)
    owner_version = _api_user(stratus, people.tenant, people.owner_id)["resource_version"]
    demoted = _post(
        people.owner,
        f"/users/{people.owner_id}/role",
        resource_version=owner_version,
        account_role="admin",
    )
    page = html_page(demoted, 409)
    assert 'id="account_role-error"' in page
    assert "owner@peopled.example is the account&#39;s last owner" in page
    assert _api_user(stratus, people.tenant, people.owner_id)["account_role"] == "owner"
    removed = _post(
        people.owner, f"/users/{people.owner_id}/remove", resource_version=owner_version
    )
    assert "is the account&#39;s last owner" in html_page(removed, 409)
    # Removing another user works, behind its confirmation page.
    version = _api_user(stratus, people.tenant, user_id)["resource_version"]
    gone = _post(people.owner, f"/users/{user_id}/remove", resource_version=version)
    assert gone.status_code == 303
    assert gone.headers["location"] == "/users"
    with http(stratus, people.tenant.api_key) as api:
        assert api.get(f"/users/{user_id}").status_code == 404
    assert any(
        e["action"] == "user.delete" and e["target"] == user_id
        for e in _audit(stratus, people.tenant)
    )


def test_grant_and_revoke_a_namespace_permission(stratus: StratusUp, people: People) -> None:
    invited = _post(people.owner, "/users", email="grant@peopled.example", account_role="developer")
    user_id = invited.headers["location"].removeprefix("/users/")
    path = f"/users/{user_id}/access"
    granted = _post(people.owner, path, namespace_id=people.namespace_id, permission="write")
    assert granted.status_code == 303, granted.text
    assert _api_user(stratus, people.tenant, user_id)["namespace_permissions"] == [
        {"namespace_id": people.namespace_id, "permission": "write"}
    ]
    detail = html_page(people.owner.get(f"/users/{user_id}"), 200)
    assert 'data-permission="write"' in detail
    revoked = _post(people.owner, path, namespace_id=people.namespace_id, permission="")
    assert revoked.status_code == 303, revoked.text
    assert _api_user(stratus, people.tenant, user_id)["namespace_permissions"] == []
    changes = [
        e["details"]["permission"]
        for e in _audit(stratus, people.tenant)
        if e["action"] == "namespace.access.update" and e["details"]["principal_id"] == user_id
    ]
    assert sorted(changes, key=str) == [None, "write"], changes
    bad = _post(people.owner, path, namespace_id=people.namespace_id, permission="god")
    assert 'id="permission-error"' in html_page(bad, 400)


def test_service_accounts_are_created_and_deleted(stratus: StratusUp, people: People) -> None:
    created = _post(
        people.owner,
        "/service-accounts",
        name="deployer",
        description="CI",
        scope="namespace",
        namespace_id=people.namespace_id,
        namespace_permission="write",
    )
    assert created.status_code == 303, created.text
    with http(stratus, people.tenant.api_key) as api:
        listed = api.get("/service-accounts").json()["service_accounts"]
    deployer = next(sa for sa in listed if sa["name"] == "deployer")
    assert deployer["namespace_scope"] == {
        "namespace_id": people.namespace_id,
        "permission": "write",
    }
    page = html_page(people.owner.get("/service-accounts"), 200)
    assert "deployer" in page
    assert f"write on <code>{people.namespace_id}</code>" in page
    duplicate = _post(
        people.owner, "/service-accounts", name="deployer", scope="account", account_role="read"
    )
    assert 'id="name-error"' in html_page(duplicate, 409)
    owner_role = _post(
        people.owner, "/service-accounts", name="boss", scope="account", account_role="owner"
    )
    assert "a service account cannot be an owner" in html_page(owner_role, 400)
    no_namespace = _post(
        people.owner,
        "/service-accounts",
        name="lost",
        scope="namespace",
        namespace_permission="read",
    )
    assert 'id="namespace_id-error"' in html_page(no_namespace, 400)
    confirm = html_page(people.owner.get(f"/service-accounts/{deployer['id']}/delete"), 200)
    assert "Delete service account deployer?" in confirm
    deleted = _post(
        people.owner,
        f"/service-accounts/{deployer['id']}/delete",
        resource_version=deployer["resource_version"],
    )
    assert deleted.status_code == 303, deleted.text
    with http(stratus, people.tenant.api_key) as api:
        assert api.get(f"/service-accounts/{deployer['id']}").status_code == 404
    actions = {e["action"] for e in _audit(stratus, people.tenant) if e["target"] == deployer["id"]}
    assert {"service_account.create", "service_account.delete"} <= actions


def test_an_api_keys_secret_is_shown_once_and_works_until_revoked(
    stratus: StratusUp, people: People
) -> None:
    expires_on = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).date().isoformat()
    created = _post(people.owner, "/api-keys", display_name="laptop", expires_on=expires_on)
    page = html_page(created, 201)
    assert created.headers["cache-control"] == "no-store"
    assert "it will not be shown again" in page
    secret = _secret(page)
    assert 'data-copy-target="api-key-secret"' in page
    with http(stratus, secret) as api:
        identity = api.get("/current-identity")
    assert identity.status_code == 200, identity.text
    assert identity.json()["id"] == people.owner_id
    key_id = identity.json()["api_key_id"]
    listing = html_page(people.owner.get("/api-keys"), 200)
    assert "laptop" in listing
    assert secret not in listing
    assert f'data-key-id="{key_id}"' in listing
    events = _audit(stratus, people.tenant)
    assert any(e["action"] == "api_key.create" and e["target"] == key_id for e in events)
    assert secret not in str(events)
    assert secret not in stratus.log_path.read_text(errors="replace")
    past = _post(people.owner, "/api-keys", display_name="old", expires_on="2020-01-01")
    assert 'id="expiry-error"' in html_page(past, 400)
    assert "expiry must be in the future" in past.text
    confirm = html_page(people.owner.get(f"/api-keys/{key_id}/revoke"), 200)
    assert secret not in confirm
    assert "Revoke API key laptop?" in confirm
    revoked = _post(people.owner, f"/api-keys/{key_id}/revoke")
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/api-keys"
    with http(stratus, secret) as api:
        assert api.get("/current-identity").status_code == 401
    assert any(
        e["action"] == "api_key.delete" and e["target"] == key_id
        for e in _audit(stratus, people.tenant)
    )


def test_an_admin_issues_a_key_for_a_service_account(stratus: StratusUp, people: People) -> None:
    _post(people.owner, "/service-accounts", name="robot", scope="account", account_role="read")
    with http(stratus, people.tenant.api_key) as api:
        robot = next(
            sa
            for sa in api.get("/service-accounts").json()["service_accounts"]
            if sa["name"] == "robot"
        )
    expires_on = (dt.datetime.now(dt.UTC) + dt.timedelta(days=7)).date().isoformat()
    created = _post(
        people.owner, "/api-keys", display_name="ci", expires_on=expires_on, owner=robot["id"]
    )
    page = html_page(created, 201)
    assert "service account robot" in page
    secret = _secret(page)
    with http(stratus, secret) as api:
        assert api.get("/current-identity").json()["id"] == robot["id"]


def test_a_read_user_gets_no_mutating_control_and_every_post_is_refused(
    people: People,
) -> None:
    reader = people.reader
    for path in (
        "/users",
        f"/users/{people.owner_id}",
        f"/users/{people.owner_id}/remove",
        "/service-accounts",
        f"/service-accounts/{UNKNOWN_ID}/delete",
    ):
        refused = html_page(reader.get(path), 403)
        assert "may not perform" in refused, path
        assert refused.count("<form") == 1, path  # sign-out only
    keys = html_page(reader.get("/api-keys"), 200)
    # Only its own keys, which the policy lets every principal of the account manage (as the
    # API does): the owner's keys are neither listed nor revocable.
    assert "owner@peopled.example" not in keys
    assert keys.count('href="/api-keys/') == 1  # the revoke link of its own single key
    nav = html_page(reader.get("/namespaces"), 200)
    assert 'href="/api-keys"' in nav
    assert 'href="/users"' not in nav
    refusals = (
        ("/users", {"email": "sneak@peopled.example", "account_role": "owner"}),
        (f"/users/{people.owner_id}/role", {"resource_version": "x", "account_role": "read"}),
        (f"/users/{people.owner_id}/remove", {"resource_version": "x"}),
        (
            f"/users/{people.reader_id}/access",
            {"namespace_id": people.namespace_id, "permission": "admin"},
        ),
        ("/service-accounts", {"name": "sneak", "scope": "account", "account_role": "admin"}),
    )
    for path, form in refusals:
        refused = html_page(_post(reader, path, **form), 403)
        assert "may not perform" in refused, path


def test_another_accounts_ids_look_exactly_like_unknown_ones(
    stratus: StratusUp, people: People
) -> None:
    other = new_tenant(stratus, "Strangers")
    stranger, stranger_key = user_with_key(
        stratus, other.api_key, "x@strangers.example", "developer"
    )
    robot, _ = service_account_with_key(
        stratus, other.api_key, {"name": "robot", "account_role": "read"}
    )
    with http(stratus, stranger_key) as api:
        key_id = api.get("/current-identity").json()["api_key_id"]
    cases = (
        ("GET", "/users/{}", stranger["id"]),
        ("GET", "/users/{}/remove", stranger["id"]),
        ("POST", "/users/{}/role", stranger["id"]),
        ("POST", "/users/{}/remove", stranger["id"]),
        ("POST", "/users/{}/access", stranger["id"]),
        ("GET", "/service-accounts/{}/delete", robot["id"]),
        ("POST", "/service-accounts/{}/delete", robot["id"]),
        ("GET", "/api-keys/{}/revoke", key_id),
        ("POST", "/api-keys/{}/revoke", key_id),
    )
    form = {
        "resource_version": "x",
        "account_role": "read",
        "namespace_id": people.namespace_id,
        "permission": "read",
    }
    for method, template, foreign_id in cases:
        if method == "GET":
            foreign = people.owner.get(template.format(foreign_id))
            unknown = people.owner.get(template.format(UNKNOWN_ID))
        else:
            foreign = _post(people.owner, template.format(foreign_id), **form)
            unknown = _post(people.owner, template.format(UNKNOWN_ID), **form)
        assert html_page(foreign, 404) == html_page(unknown, 404), template
        assert NOT_FOUND_TEXT in foreign.text
        assert foreign_id not in foreign.text


def test_every_people_post_needs_the_csrf_token(people: People) -> None:
    for path in (
        "/users",
        f"/users/{people.reader_id}/role",
        f"/users/{people.reader_id}/access",
        f"/users/{people.reader_id}/remove",
        "/service-accounts",
        f"/service-accounts/{UNKNOWN_ID}/delete",
        "/api-keys",
        f"/api-keys/{UNKNOWN_ID}/revoke",
    ):
        for token in (None, "wrong"):
            form = {"email": "csrf@peopled.example", "account_role": "read", "name": "csrf"}
            data = form if token is None else {**form, "csrf_token": token}
            refused = people.owner.post(path, data=data)
            assert "Missing or wrong CSRF token" in html_page(refused, 403), path


def test_an_admin_gets_no_control_over_owners(stratus: StratusUp, people: People) -> None:
    _, admin_key = user_with_key(stratus, people.tenant.api_key, "admin@peopled.example", "admin")
    admin = signed_in(stratus, admin_key)
    try:
        users = html_page(admin.get("/users"), 200)
        assert 'value="admin"' in users
        assert 'value="owner"' not in users  # only owners invite owners
        owner = html_page(admin.get(f"/users/{people.owner_id}"), 200)
        assert "/role" not in owner
        assert "/remove" not in owner
        version = _api_user(stratus, people.tenant, people.owner_id)["resource_version"]
        refused = _post(
            admin,
            f"/users/{people.owner_id}/role",
            resource_version=version,
            account_role="read",
        )
        assert "may not perform user.update" in html_page(refused, 403)
        removed = _post(admin, f"/users/{people.owner_id}/remove", resource_version=version)
        assert "may not perform user.delete" in html_page(removed, 403)
        invited = _post(admin, "/users", email="boss@peopled.example", account_role="owner")
        assert "may not perform user.create" in html_page(invited, 403)
    finally:
        admin.close()
