"""Group claims at OIDC sign-in, with the real IdP (npm ``oidc-provider`` releasing a ``groups``
claim with scope ``groups``): the account maps IdP group ``eng`` to its groups; each sign-in
makes the user's ``idp`` memberships exactly the mapped groups the ID token asserts (an empty
list or an absent claim: none), never touching a manual membership, and the session's access
follows at once (sessions made before too)."""

from __future__ import annotations

import secrets

import httpx
from group_support import add_member, create_group, memberships
from identity_support import assert_problem, invite
from oidc_support import OidcStratus
from support import http
from test_oidc_sign_in import run_to_callback, sign_in

from controlplane.sign_in.service import s256

ERIN = "erin@example.com"


def _signed_in(oidc: OidcStratus, login: str) -> httpx.Client:
    browser = httpx.Client(timeout=30, base_url=f"{oidc.stratus.api_url}/api/v1")
    response = sign_in(oidc, browser, login)
    assert response.status_code == 200, response.text
    assert response.json()["email"] == ERIN
    return browser


def _handed_to_the_cli(oidc: OidcStratus, login: str) -> None:
    challenge = s256(secrets.token_urlsafe(32))
    url = oidc.login_url(cli_redirect="http://127.0.0.1:9/callback", cli_challenge=challenge)
    with httpx.Client(timeout=30) as browser:
        handed = browser.get(run_to_callback(oidc, browser, login, url=url))
    assert handed.status_code == 302, handed.text
    assert handed.headers["location"].startswith("http://127.0.0.1:9/callback?code=")


def test_idp_groups_become_idp_memberships_at_each_sign_in(
    oidc: OidcStratus, owner_key: str
) -> None:
    stratus = oidc.stratus
    with http(stratus, owner_key) as owner:
        account_id = owner.get("/current-identity").json()["account_id"]
    erin = invite(stratus, owner_key, ERIN, "read")
    admins = create_group(stratus, account_id, "oncall-admins", account_role="admin")
    readers = create_group(stratus, account_id, "readers")
    # Manual first: a group the IdP also maps stays manual, and survives every sync.
    add_member(stratus, account_id, readers, erin["id"])
    with http(stratus, owner_key) as owner:
        put = owner.put(
            "/group-claims",
            json={
                "mappings": [
                    {"idp_group": "eng", "group_id": admins},
                    {"idp_group": "eng", "group_id": readers},
                ]
            },
        )
        assert put.status_code == 200, put.text

    # The ID token says ["eng", "other"]: the admins group joins (idp), readers stays manual,
    # "other" maps to nothing; the session holds the group's admin role at once.
    first = _signed_in(oidc, "erin")
    assert memberships(stratus, erin["id"]) == {admins: "idp", readers: "manual"}
    assert first.get("/audit-logs").status_code == 200
    assert first.get("/current-identity").json()["account_role"] == "read"

    # The IdP now sends []: the idp membership goes, the manual one stays, and access is back
    # to erin's own role, in the new session and in the one made before.
    second = _signed_in(oidc, "erin-nogroups")
    assert memberships(stratus, erin["id"]) == {readers: "manual"}
    assert_problem(second.get("/audit-logs"), 403, "forbidden")
    assert_problem(first.get("/audit-logs"), 403, "forbidden")

    # Back in eng through the CLI's sign-in (synced at the callback, before the hand-off),
    # then a token without the claim at all: treated as no groups.
    _handed_to_the_cli(oidc, "erin")
    assert memberships(stratus, erin["id"]) == {admins: "idp", readers: "manual"}
    third = _signed_in(oidc, "erin-noclaim")
    assert memberships(stratus, erin["id"]) == {readers: "manual"}
    assert_problem(third.get("/audit-logs"), 403, "forbidden")

    # Group claims off: sign-ins leave memberships alone.
    with http(stratus, owner_key) as owner:
        assert owner.delete("/group-claims").status_code == 204
    _signed_in(oidc, "erin").close()
    assert memberships(stratus, erin["id"]) == {readers: "manual"}

    with http(stratus, owner_key) as owner:
        events = owner.get(
            "/audit-logs", params={"action": "group_claims.sync", "page_size": 10}
        ).json()["audit_logs"]
    # One event per sign-in that changed something (4 of the 5), newest first.
    assert [(e["details"]["added"], e["details"]["removed"]) for e in events] == [
        ([], [admins]),
        ([admins], []),
        ([], [admins]),
        ([admins], []),
    ]
    assert {(e["actor"], e["target"], e["details"]["method"]) for e in events} == {
        (f"user:{ERIN}", f"user:{erin['id']}", "oidc")
    }
    for browser in (first, second, third):
        browser.close()
