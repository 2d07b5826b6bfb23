"""SCIM 2.0 provisioning through a real Stratus: every check of ``scim2-tester`` passes, an IdP
(``scim2-client``) provisions and deprovisions users and groups and Stratus' own API sees the
same, the SCIM token is the account's alone, and every refusal is a SCIM error."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from identity_support import assert_problem, issue_user_key
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import Group, GroupMember, PatchOp, PatchOperation, User
from scim2_tester import Status, check_server
from support import StratusUp, Tenant, http, new_tenant

SCIM_ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class _FreshEmails:
    """``examples`` for ``userName``: scim2-tester fills attributes with random strings unless
    the model gives examples, and a Stratus userName must be an email; each draw is a new one
    (a fixed list would collide on userName's uniqueness)."""

    def __len__(self) -> int:
        return 1_000_000

    def __getitem__(self, index: int) -> str:
        return f"tester-{uuid.uuid4().hex[:12]}@scim.example"

    def __bool__(self) -> bool:
        return True


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "Provisioned")


@pytest.fixture(scope="module")
def scim_token(stratus: StratusUp, tenant: Tenant) -> str:
    with http(stratus, tenant.api_key) as client:
        response = client.post("/scim-token")
    assert response.status_code == 201, response.text
    token: str = response.json()["token"]
    return token


def scim_http(stratus: StratusUp, token: str | None) -> httpx2.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx2.Client(base_url=stratus.api_url + "/scim/v2", headers=headers, timeout=30)


@pytest.fixture
def idp(stratus: StratusUp, scim_token: str) -> Iterator[SyncSCIMClient]:
    with scim_http(stratus, scim_token) as client:
        scim = SyncSCIMClient(client)
        scim.discover()
        yield scim


def assert_scim_error(response: httpx2.Response, status: int, scim_type: str | None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/scim+json"
    body = response.json()
    assert body["schemas"] == [SCIM_ERROR]
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    assert body["detail"]


# HTTP-level compliance (~40 s on a loaded 2-core machine): once, on SQLite; the other tests
# of the module run on both databases.
@pytest.mark.parametrize("stratus", ["sqlite"], indirect=True)
def test_every_scim2_tester_check_passes(stratus: StratusUp, scim_token: str) -> None:
    """Every check scim2-tester has (discovery, CRUD, attributes on GET and on the root
    ``POST /.search``, PATCH add/remove/replace on every attribute, errors) on Users and Groups
    passes: none fails, none is skipped."""
    with scim_http(stratus, scim_token) as client:
        scim = SyncSCIMClient(client)
        scim.discover()
        user_model = scim.get_resource_model("User")
        assert user_model is not None
        user_model.model_fields["user_name"].examples = _FreshEmails()  # type: ignore[assignment]
        results = check_server(scim)
    passed = [r for r in results if r.status is Status.SUCCESS]
    skipped = [r for r in results if r.status is Status.SKIPPED]
    failed = [r for r in results if r not in passed and r not in skipped]
    print(f"scim2-tester: {len(results)} checks, {len(passed)} passed, {len(skipped)} skipped")
    assert not failed, "\n".join(f"{r.title}: {r.status} {r.reason}" for r in failed)
    assert not skipped, [f"{r.title}: {r.reason}" for r in skipped]
    assert len(passed) >= 60


def _user(email: str, external_id: str) -> User:  # type: ignore[type-arg]
    return User(
        user_name=email,
        external_id=external_id,
        display_name="Ada Lovelace",
        active=True,
        name={"given_name": "Ada", "family_name": "Lovelace"},
    )


def test_an_idp_provisions_and_deprovisions_and_stratus_sees_the_same(
    stratus: StratusUp, tenant: Tenant, idp: SyncSCIMClient
) -> None:
    """Okta's sequence: create a user, a group with them as member, patch the membership,
    deactivate (their API key is refused at once, the API shows it disabled), reactivate,
    delete."""
    ada = idp.create(_user("Ada@Analytical.example", "okta-ada"))
    grace = idp.create(_user("grace@analytical.example", "okta-grace"))
    assert ada.user_name == "ada@analytical.example"
    found = idp.query(User, query_parameters={"filter": 'userName eq "ADA@analytical.example"'})
    assert [u.id for u in found.resources or []] == [ada.id]

    with http(stratus, tenant.api_key) as api:
        user = api.get(f"/users/{ada.id}").json()
        assert user["email"] == "ada@analytical.example"
        assert user["account_role"] == "read"

    group = idp.create(Group(display_name="engineers", members=[GroupMember(value=ada.id)]))
    assert [m.value for m in group.members or []] == [ada.id]
    patched = idp.modify(
        Group,
        group.id,
        PatchOp[Group](
            operations=[
                PatchOperation(op="add", path="members", value=[{"value": grace.id}]),
                PatchOperation(op="remove", path=f'members[value eq "{ada.id}"]'),
            ]
        ),
    )
    assert patched is not None
    assert [m.value for m in patched.members or []] == [grace.id]
    members = _member_sources(stratus, tenant.api_key, group.id)
    assert members == {grace.id: "scim"}, members
    # SCIM's membership writes are the groups service's: the API's event (emails), actor scim.
    with http(stratus, tenant.api_key) as api:
        changes = api.get("/audit-logs", params={"action": "group.members.update"}).json()
    assert [
        (e["actor"], e["details"]) for e in changes["audit_logs"] if e["target"] == group.id
    ] == [
        ("scim", {"added": [grace.user_name], "removed": [ada.user_name], "source": "scim"}),
        ("scim", {"added": [ada.user_name], "removed": [], "source": "scim"}),
    ]

    key = issue_user_key(stratus, ada.id)
    with http(stratus, key) as client:
        assert client.get("/current-identity").status_code == 200
    idp.modify(
        User,
        ada.id,
        PatchOp[User](operations=[PatchOperation(op="replace", path="active", value=False)]),
    )
    with http(stratus, key) as client:
        assert_problem(client.get("/current-identity"), 401, "unauthenticated")
    with http(stratus, tenant.api_key) as api:
        keys = api.get("/api-keys", params={"owner_id": ada.id}).json()["api_keys"]
        assert [k["disabled"] for k in keys] == [True]
        events = api.get("/audit-logs", params={"page_size": 100}).json()["audit_logs"]
    deactivation = [e for e in events if e["action"] == "user.deactivate" and e["target"] == ada.id]
    assert [(e["actor"], e["details"]["api_keys_disabled"]) for e in deactivation] == [
        ("scim", [keys[0]["id"]])
    ]

    # Entra ID's form: a no-path replace with the boolean as a string.
    raw = idp.client.patch(
        f"/Users/{ada.id}",
        json={
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "Replace", "value": {"active": "True"}}],
        },
    )
    assert raw.status_code == 200, raw.text
    assert raw.json()["active"] is True

    idp.delete(User, ada.id)
    with http(stratus, tenant.api_key) as api:
        assert_problem(api.get(f"/users/{ada.id}"), 404, "not-found")
    idp.delete(Group, group.id)
    idp.delete(User, grace.id)


def _member_sources(stratus: StratusUp, owner_key: str, group_id: str) -> dict[str, str]:
    """The group's members and their source as ``GET /api/v1/groups/{id}/members`` tells."""
    with http(stratus, owner_key) as api:
        response = api.get(f"/groups/{group_id}/members")
    assert response.status_code == 200, response.text
    return {m["user_id"]: m["source"] for m in response.json()["members"]}


def test_the_token_is_shown_once_and_rotating_revokes_the_previous(
    stratus: StratusUp, tenant: Tenant
) -> None:
    other = new_tenant(stratus, "Rotating")
    with http(stratus, other.api_key) as api:
        assert api.get("/scim-token").json()["exists"] is False
        first = api.post("/scim-token").json()["token"]
        second = api.post("/scim-token").json()["token"]
        state = api.get("/scim-token").json()
    assert state["exists"] is True
    assert "token" not in state
    # The public URL (here the API's own), never the request's Host header.
    assert state["scim_base_url"] == f"{stratus.api_url}/scim/v2"
    with scim_http(stratus, first) as client:
        assert_scim_error(client.get("/Users"), 401, None)
    with scim_http(stratus, second) as client:
        owner = client.get("/Users", headers={"Host": "evil.example"}).json()
        assert owner["totalResults"] == 1  # the owner
        location = owner["Resources"][0]["meta"]["location"]
        assert location.startswith(f"{stratus.api_url}/scim/v2/Users/")
    with http(stratus, other.api_key) as api:
        assert api.get("/scim-token").json()["last_used_at"] is not None
        assert api.delete("/scim-token").status_code == 204
        assert_problem(api.delete("/scim-token"), 404, "not-found")
    with scim_http(stratus, second) as client:
        assert_scim_error(client.get("/Users"), 401, None)


def test_a_token_sees_only_its_own_account(
    stratus: StratusUp, tenant: Tenant, scim_token: str, idp: SyncSCIMClient
) -> None:
    other = new_tenant(stratus, "Elsewhere")
    with http(stratus, other.api_key) as api:
        other_token = api.post("/scim-token").json()["token"]
        other_owner = api.get("/current-identity").json()["id"]
    with scim_http(stratus, scim_token) as client:
        assert_scim_error(client.get(f"/Users/{other_owner}"), 404, None)
        assert_scim_error(client.delete(f"/Users/{other_owner}"), 404, None)
        listed = client.get("/Users", params={"filter": 'userName eq "owner@elsewhere.example"'})
        assert listed.json()["totalResults"] == 0
        foreign_member = client.post(
            "/Groups", json={"displayName": "mixed", "members": [{"value": other_owner}]}
        )
        assert_scim_error(foreign_member, 400, "invalidValue")
        searched = client.post("/.search", json={"schemas": [SEARCH]}).json()["Resources"]
    assert other_owner not in {row["id"] for row in searched}
    with scim_http(stratus, other_token) as client:
        users = client.get("/Users").json()["Resources"]
        everything = client.post("/.search", json={"schemas": [SEARCH]}).json()
    assert [u["userName"] for u in users] == ["owner@elsewhere.example"]
    assert [row["id"] for row in everything["Resources"]] == [other_owner]


# HTTP-level like the compliance test: SQLite only.
@pytest.mark.parametrize("stratus", ["sqlite"], indirect=True)
def test_search_lists_users_then_groups_paged_together(stratus: StratusUp) -> None:
    """``POST /.search`` (RFC 7644 §3.4.3): the account's users, then its groups, paged over
    the two; a filter on an attribute one type lacks matches none of that type;
    ``attributes`` projects each row; ``/Users/.search`` and ``/Groups/.search`` answer as
    their GET lists."""
    owner = new_tenant(stratus, "Searched")
    with http(stratus, owner.api_key) as api:
        token = api.post("/scim-token").json()["token"]
        owner_id = api.get("/current-identity").json()["id"]
    with scim_http(stratus, token) as client:
        users = [
            client.post(
                "/Users", json={"userName": f"{n}@searched.example", "externalId": "hr"}
            ).json()["id"]
            for n in ("ann", "bob")
        ]
        groups = [
            client.post("/Groups", json={"displayName": n, "externalId": "hr"}).json()["id"]
            for n in ("ops", "dev")
        ]

        def search(path: str = "/.search", **query: Any) -> dict[str, Any]:
            response = client.post(path, json={"schemas": [SEARCH], **query})
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "application/scim+json"
            body: dict[str, Any] = response.json()
            return body

        def ids(body: dict[str, Any]) -> list[str]:
            return [row["id"] for row in body["Resources"]]

        everything = search()
        assert ids(everything) == [owner_id, *users, *groups]
        assert everything["totalResults"] == 5
        page = search(startIndex=3, count=2)
        assert (ids(page), page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (
            [users[1], groups[0]],
            5,
            3,
            2,
        )
        assert ids(search(startIndex=5, count=10)) == [groups[1]]
        assert search(count=0)["totalResults"] == 5
        assert ids(search(filter='externalId eq "hr"')) == [*users, *groups]
        assert ids(search(filter='userName eq "bob@searched.example"')) == [users[1]]
        assert ids(search(filter='displayName eq "dev"')) == [groups[1]]
        projected = search(attributes=["userName"], filter='externalId eq "hr"')["Resources"]
        assert [sorted(row) for row in projected] == [
            ["id", "meta", "schemas", "userName"],
            ["id", "meta", "schemas", "userName"],
            ["id", "meta", "schemas"],
            ["id", "meta", "schemas"],
        ]
        slim = search(excludedAttributes=["emails", "name"], count=1)["Resources"]
        assert "emails" not in slim[0]
        assert slim[0]["userName"] == "owner@searched.example"
        assert ids(search("/Users/.search", filter='externalId eq "hr"')) == users
        assert ids(search("/Groups/.search", startIndex=2)) == [groups[1]]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "scim_type"),
    [
        ("POST", "/Users", {"userName": "not-an-email"}, 400, "invalidValue"),
        ("POST", "/Users", {"displayName": "no userName"}, 400, "invalidValue"),
        ("POST", "/Users", {"userName": "owner@provisioned.example"}, 409, "uniqueness"),
        ("GET", "/Users?filter=userName%20co%20%22a%22", None, 400, "invalidFilter"),
        ("GET", "/Users?filter=title%20eq%20%22x%22", None, 400, "invalidFilter"),
        ("GET", "/Users/no-such-user", None, 404, None),
        ("POST", "/Groups", {"members": []}, 400, "invalidValue"),
        ("POST", "/Users", "[1]", 400, "invalidSyntax"),
        ("POST", "/Schemas", {}, 405, None),
        ("GET", "/NoSuchEndpoint", None, 404, None),
        ("POST", "/.search", {"filter": 'id eq "x"'}, 400, "invalidSyntax"),
        ("POST", "/Users/.search", {"schemas": [PATCH_OP]}, 400, "invalidSyntax"),
        ("POST", "/.search", {"schemas": [SEARCH], "count": "10"}, 400, "invalidSyntax"),
        ("POST", "/.search", {"schemas": [SEARCH], "attributes": "id"}, 400, "invalidSyntax"),
        ("POST", "/.search", {"schemas": [SEARCH], "sortBy": "id"}, 400, "invalidValue"),
        ("POST", "/.search", {"schemas": [SEARCH], "filter": 'title eq "x"'}, 400, "invalidFilter"),
        (
            "POST",
            "/Groups/.search",
            {"schemas": [SEARCH], "filter": 'userName eq "a"'},
            400,
            "invalidFilter",
        ),
    ],
    ids=[
        "username-not-email",
        "no-username",
        "duplicate-username",
        "unsupported-operator",
        "unsupported-attribute",
        "unknown-user",
        "group-without-name",
        "body-not-object",
        "discovery-is-read-only",
        "unknown-endpoint",
        "search-without-schema",
        "search-with-another-schema",
        "search-count-not-integer",
        "search-attributes-not-list",
        "search-sorted",
        "search-attribute-of-no-type",
        "group-search-by-user-attribute",
    ],
)
def test_refusals_are_scim_errors(
    stratus: StratusUp,
    scim_token: str,
    method: str,
    path: str,
    body: Any,
    status: int,
    scim_type: str | None,
) -> None:
    with scim_http(stratus, scim_token) as client:
        content = body if isinstance(body, str) else None
        payload = None if isinstance(body, str) else body
        response = client.request(
            method,
            path,
            json=payload,
            content=content,
            headers={"content-type": "application/scim+json"},
        )
    assert_scim_error(response, status, scim_type)


def test_the_last_owner_can_be_neither_deactivated_nor_deleted(
    stratus: StratusUp, tenant: Tenant, scim_token: str
) -> None:
    with http(stratus, tenant.api_key) as api:
        owner_id = api.get("/current-identity").json()["id"]
    with scim_http(stratus, scim_token) as client:
        patch = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        }
        assert_scim_error(client.patch(f"/Users/{owner_id}", json=patch), 409, None)
        assert_scim_error(client.delete(f"/Users/{owner_id}"), 409, None)
        assert client.get(f"/Users/{owner_id}").json()["active"] is True


def test_a_scim_token_is_not_an_api_key_nor_the_other_way(
    stratus: StratusUp, tenant: Tenant, scim_token: str
) -> None:
    with http(stratus, scim_token) as api:
        assert_problem(api.get("/users"), 401, "unauthenticated")
    with scim_http(stratus, tenant.api_key) as client:
        assert_scim_error(client.get("/Users"), 401, None)
    with scim_http(stratus, None) as client:
        assert_scim_error(client.get("/ServiceProviderConfig"), 401, None)


def test_the_cli_creates_reads_and_deletes_the_token(stratus: StratusUp) -> None:
    owner = new_tenant(stratus, "Clidp")
    created = stratus.cli("--output", "json", "scim-token", "create", api_key=owner.api_key)
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)["token"]
    with scim_http(stratus, token) as client:
        assert client.get("/ServiceProviderConfig").status_code == 200
    shown = stratus.cli("scim-token", "get", api_key=owner.api_key)
    assert "last used: 20" in shown.stdout, shown.stdout
    assert token not in shown.stdout
    assert stratus.cli("scim-token", "delete", api_key=owner.api_key).returncode == 0
    gone = stratus.cli("scim-token", "get", api_key=owner.api_key)
    assert "SCIM provisioning is off" in gone.stdout
    refused = stratus.cli("scim-token", "delete", api_key=owner.api_key)
    assert refused.returncode != 0
    assert "no SCIM token" in refused.stderr
