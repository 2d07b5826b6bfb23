"""Settings → Provisioning over HTTP against a real Stratus: the SCIM token is created with the
token shown once (no-store, never again), works at ``/scim/v2`` until replaced or revoked, and
both are audited as through the API; group claims are turned on, renamed, mapped, unmapped and
turned off through the API's service (what ``/api/v1/group-claims`` then shows, audited); the
service's refusals of bad input (a bad claim name, an unknown or another account's group)
show on the form, never a 500; a `read` user sees no link and every page and POST is refused;
every POST needs the CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from console_support import all_signed_in, csrf_token, html_page
from identity_support import user_with_key
from support import StratusUp, Tenant, http, new_tenant

pytestmark = pytest.mark.sqlite_only

PAGE = "/settings/provisioning"
UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


@dataclass
class Provisioned:
    tenant: Tenant
    owner: httpx.Client
    reader: httpx.Client
    engineers: str  # group ids
    operators: str


def _group(stratus: StratusUp, api_key: str, name: str) -> str:
    with http(stratus, api_key) as api:
        created = api.post("/groups", json={"name": name})
    assert created.status_code == 201, created.text
    group_id: str = created.json()["id"]
    return group_id


@pytest.fixture(scope="module")
def provisioned(stratus: StratusUp) -> Iterator[Provisioned]:
    tenant = new_tenant(stratus, "Provisioned")
    engineers = _group(stratus, tenant.api_key, "engineers")
    operators = _group(stratus, tenant.api_key, "operators")
    _, reader_key = user_with_key(stratus, tenant.api_key, "reader@provisioned.example", "read")
    with all_signed_in(stratus, tenant.api_key, reader_key) as (owner, reader):
        yield Provisioned(tenant, owner, reader, engineers, operators)


def _post(client: httpx.Client, path: str, **form: str) -> httpx.Response:
    return client.post(path, data={"csrf_token": csrf_token(client), **form})


def _audit(stratus: StratusUp, tenant: Tenant, action: str) -> list[dict[str, Any]]:
    with http(stratus, tenant.api_key) as api:
        response = api.get("/audit-logs", params={"page_size": 200, "action": action})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["audit_logs"]
    return [event for event in events if event["action"] == action]


def _scim(stratus: StratusUp, token: str) -> int:
    """The status ``/scim/v2`` answers a request authenticated by ``token``."""
    response = httpx.get(
        f"{stratus.api_url}/scim/v2/Users",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    return response.status_code


def _created_token(response: httpx.Response) -> str:
    page = html_page(response, 201)
    assert response.headers["cache-control"] == "no-store"
    found = re.search(r'id="scim-token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def _claims(stratus: StratusUp, tenant: Tenant) -> httpx.Response:
    with http(stratus, tenant.api_key) as api:
        return api.get("/group-claims")


def test_the_scim_token_is_shown_once_works_and_is_revoked(
    stratus: StratusUp, provisioned: Provisioned
) -> None:
    owner = provisioned.owner
    settings = html_page(owner.get("/settings"))
    assert f'href="{PAGE}"' in settings
    before = html_page(owner.get(PAGE))
    assert "none: SCIM is off" in before
    assert f"<code>{stratus.api_url}/scim/v2</code>" in before
    assert "Revoke token" not in before

    created = _post(owner, f"{PAGE}/scim-token")
    first = _created_token(created)
    assert f"<code>{stratus.api_url}/scim/v2</code>" in created.text
    assert "it will not be shown again" in created.text
    assert _scim(stratus, first) == 200
    after = html_page(owner.get(PAGE))
    assert first not in after
    assert "stratus_scim_" not in after
    assert "Replace token" in after
    assert f'href="{PAGE}/scim-token/revoke"' in after
    assert "replaces this one" in after

    replaced = _created_token(_post(owner, f"{PAGE}/scim-token"))
    assert replaced != first
    assert _scim(stratus, first) == 401
    assert _scim(stratus, replaced) == 200
    events = _audit(stratus, provisioned.tenant, "scim_token.create")
    assert [e["actor"] for e in events] == ["user:owner@provisioned.example"] * 2
    newest, oldest = events  # newest first
    assert oldest["details"] == {"replaced": None}
    assert newest["details"] == {"replaced": oldest["target"]}

    confirm = html_page(owner.get(f"{PAGE}/scim-token/revoke"))
    assert "Revoke the SCIM token?" in confirm
    revoked = _post(owner, f"{PAGE}/scim-token/revoke")
    assert revoked.status_code == 303, revoked.text
    assert revoked.headers["location"] == f"{PAGE}?note=scim-revoked"
    assert _scim(stratus, replaced) == 401
    assert "SCIM token is revoked" in html_page(owner.get(revoked.headers["location"]))
    (deleted,) = _audit(stratus, provisioned.tenant, "scim_token.delete")
    assert deleted["target"] == newest["target"]
    # Nothing left to revoke: the API's 404, as a page.
    assert html_page(_post(owner, f"{PAGE}/scim-token/revoke"), 404)
    assert html_page(owner.get(f"{PAGE}/scim-token/revoke"), 404)


def test_group_claims_are_set_edited_and_turned_off(
    stratus: StratusUp, provisioned: Provisioned
) -> None:
    owner, tenant = provisioned.owner, provisioned.tenant
    assert "<strong>Off</strong>" in html_page(owner.get(PAGE))
    assert _claims(stratus, tenant).status_code == 404

    on = _post(owner, f"{PAGE}/group-claims", oidc_claim="roles", saml_attribute="memberOf")
    assert on.status_code == 303, on.text
    assert on.headers["location"] == f"{PAGE}?note=claims-saved"
    for idp_group, group_id in (
        ("eng", provisioned.engineers),
        ("ops", provisioned.operators),
        ("all", provisioned.engineers),
    ):
        added = _post(
            owner, f"{PAGE}/group-claims/mappings", idp_group=idp_group, group_id=group_id
        )
        assert added.status_code == 303, added.text
    page = html_page(owner.get(PAGE))
    assert 'value="roles"' in page
    assert 'value="memberOf"' in page
    assert f'<a href="/groups/{provisioned.operators}">operators</a>' in page
    assert "<code>eng</code>" in page

    removed = _post(
        owner,
        f"{PAGE}/group-claims/mappings/remove",
        idp_group="eng",
        group_id=provisioned.engineers,
    )
    assert removed.status_code == 303, removed.text
    renamed = _post(owner, f"{PAGE}/group-claims", oidc_claim="groups", saml_attribute="roles")
    assert renamed.status_code == 303, renamed.text
    shown = _claims(stratus, tenant).json()
    assert (shown["oidc_claim"], shown["saml_attribute"]) == ("groups", "roles")
    assert shown["mappings"] == [
        {"idp_group": "all", "group_id": provisioned.engineers, "group_name": "engineers"},
        {"idp_group": "ops", "group_id": provisioned.operators, "group_name": "operators"},
    ]  # by IdP group
    updates = _audit(stratus, tenant, "group_claims.update")
    assert len(updates) == 6
    assert {e["actor"] for e in updates} == {"user:owner@provisioned.example"}
    assert updates[0]["target"] == f"group_claims:{tenant.account_id}"
    assert updates[0]["details"]["oidc_claim"] == "groups"
    assert updates[0]["details"]["saml_attribute"] == "roles"
    assert sorted(m["idp_group"] for m in updates[0]["details"]["mappings"]) == ["all", "ops"]
    assert updates[-1]["details"] == {
        "oidc_claim": "roles",
        "saml_attribute": "memberOf",
        "mappings": [],
    }

    confirm = html_page(owner.get(f"{PAGE}/group-claims/delete"))
    assert "Turn group claims off?" in confirm
    off = _post(owner, f"{PAGE}/group-claims/delete")
    assert off.status_code == 303, off.text
    assert off.headers["location"] == f"{PAGE}?note=claims-off"
    assert _claims(stratus, tenant).status_code == 404
    (deleted,) = _audit(stratus, tenant, "group_claims.delete")
    assert deleted["target"] == f"group_claims:{tenant.account_id}"
    # Off already: the service's 404, as a page.
    assert html_page(_post(owner, f"{PAGE}/group-claims/delete"), 404)


def test_bad_input_shows_the_services_message_on_the_form(
    stratus: StratusUp, provisioned: Provisioned
) -> None:
    owner, tenant = provisioned.owner, provisioned.tenant
    bad_name = _post(owner, f"{PAGE}/group-claims", oidc_claim="my groups", saml_attribute="g")
    page = html_page(bad_name, 400)
    assert 'id="oidc_claim-error"' in page
    assert "oidc_claim must be 1-256 characters of letters, digits" in page
    assert 'value="my groups"' in page  # what was typed stays

    other = new_tenant(stratus, "Unprovisioned")
    foreign = _group(stratus, other.api_key, "theirs")
    for group_id in (UNKNOWN_ID, foreign):
        refused = _post(owner, f"{PAGE}/group-claims/mappings", idp_group="x", group_id=group_id)
        page = html_page(refused, 404)
        assert 'id="group_id-error"' in page
        assert f"no group &#39;{group_id}&#39; in this account" in page
    empty = html_page(
        _post(owner, f"{PAGE}/group-claims/mappings", idp_group="", group_id=provisioned.operators),
        400,
    )
    assert 'id="idp_group-error"' in empty
    missing = _post(
        owner, f"{PAGE}/group-claims/mappings/remove", idp_group="nope", group_id=UNKNOWN_ID
    )
    assert "no mapping of the IdP group &#39;nope&#39;" in html_page(missing, 400)
    # Nothing was saved by any of them.
    assert _claims(stratus, tenant).status_code == 404


def test_a_read_user_sees_no_link_and_is_refused(provisioned: Provisioned) -> None:
    reader = provisioned.reader
    assert f'href="{PAGE}"' not in html_page(reader.get("/settings"))
    for path in (PAGE, f"{PAGE}/scim-token/revoke", f"{PAGE}/group-claims/delete"):
        refused = html_page(reader.get(path), 403)
        assert "may not" in refused, path
    for path, form in (
        (f"{PAGE}/scim-token", {}),
        (f"{PAGE}/scim-token/revoke", {}),
        (f"{PAGE}/group-claims", {"oidc_claim": "groups", "saml_attribute": "groups"}),
        (f"{PAGE}/group-claims/mappings", {"idp_group": "x", "group_id": provisioned.engineers}),
        (f"{PAGE}/group-claims/mappings/remove", {"idp_group": "x", "group_id": UNKNOWN_ID}),
        (f"{PAGE}/group-claims/delete", {}),
    ):
        refused = html_page(_post(reader, path, **form), 403)
        assert (
            "this credential may not manage SCIM" in refused
            or "this credential may not manage group claims" in refused
        ), path
        assert "stratus_scim_" not in refused


def test_every_provisioning_post_needs_the_csrf_token(provisioned: Provisioned) -> None:
    for path in (
        f"{PAGE}/scim-token",
        f"{PAGE}/scim-token/revoke",
        f"{PAGE}/group-claims",
        f"{PAGE}/group-claims/mappings",
        f"{PAGE}/group-claims/mappings/remove",
        f"{PAGE}/group-claims/delete",
    ):
        for token in (None, "wrong"):
            form = {"oidc_claim": "groups", "saml_attribute": "groups"}
            data = form if token is None else {**form, "csrf_token": token}
            refused = provisioned.owner.post(path, data=data)
            assert "Missing or wrong CSRF token" in html_page(refused, 403), path
