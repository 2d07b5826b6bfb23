"""OIDC sign-in against a real OpenID Certified provider (npm ``oidc-provider``), browser-less:
httpx follows the redirects and posts the IdP's login and consent forms. ID-token refusals use
a stub IdP that returns precisely wrong tokens signed with the key it publishes."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
import time
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from joserfc.jwk import RSAKey
from oidc_support import CLIENT_ID, CLIENT_SECRET, OidcStratus
from product_constants import PROBLEM
from support import http

from controlplane.api_keys import service as api_keys
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work, utcnow
from controlplane.users import service as users


def _browser() -> httpx.Client:
    return httpx.Client(timeout=30)


def _form_action(page: httpx.Response) -> str:
    match = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert match, page.text[:2000]
    return urljoin(str(page.url), match.group(1))


def run_to_callback(
    oidc: OidcStratus, browser: httpx.Client, login: str, *, url: str | None = None
) -> str:
    """Start at Stratus's login URL, sign in and consent at the IdP; return the callback URL
    the IdP redirects to (not yet requested)."""
    response = browser.get(url or oidc.login_url())
    callback = oidc.callback_url()
    for _ in range(20):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(callback):
                return location
            response = browser.get(location)
            continue
        assert response.status_code == 200, response.text[:2000]
        if 'name="login"' in response.text:
            response = browser.post(
                _form_action(response), data={"prompt": "login", "login": login, "password": "x"}
            )
        elif 'name="prompt" value="consent"' in response.text:
            response = browser.post(_form_action(response), data={"prompt": "consent"})
        else:
            raise AssertionError(f"unexpected IdP page: {response.text[:2000]}")
    raise AssertionError("too many redirects")


def sign_in(oidc: OidcStratus, browser: httpx.Client, login: str) -> httpx.Response:
    return browser.get(run_to_callback(oidc, browser, login))


def _problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug, body
    return body


def test_sign_in_creates_a_session_that_authenticates_api_calls(
    oidc: OidcStratus, owner_key: str
) -> None:
    """Authorization code + PKCE with the real IdP → HttpOnly SameSite=Lax session cookie →
    the API answers as the invited user; the CSRF token is returned at sign-in."""
    with _browser() as browser:
        response = sign_in(oidc, browser, "alice")
        assert response.status_code == 200, response.text
        session = response.json()
        assert session["email"] == "alice@example.com"
        assert session["account_role"] == "owner"
        set_cookie = response.headers["set-cookie"]
        assert "stratus_session=stratus_session_" in set_cookie
        cookie_attrs = set_cookie.lower()
        assert "httponly" in cookie_attrs
        assert "samesite=lax" in cookie_attrs
        assert "path=/" in cookie_attrs
        assert "secure" not in cookie_attrs  # served over http here
        api = f"{oidc.stratus.api_url}/api/v1"
        listed = browser.get(f"{api}/namespaces")
        assert listed.status_code == 200, listed.text
        current = browser.get(f"{api}/auth/session")
        assert current.json()["csrf_token"] == session["csrf_token"]
    # Only the token's hash is stored.
    token = set_cookie.split("stratus_session=", 1)[1].split(";", 1)[0]
    with sqlite3.connect(oidc.stratus.data_dir / "stratus.db") as db:
        stored = db.execute("SELECT token_hash FROM web_sessions").fetchall()
    assert all(token not in row[0] for row in stored)


def test_authorization_request_uses_pkce_s256_state_and_nonce(oidc: OidcStratus) -> None:
    with _browser() as browser:
        response = browser.get(oidc.login_url())
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert "code_verifier" not in query
    assert len(query["state"][0]) >= 43
    assert len(query["nonce"][0]) >= 43
    assert "stratus_oidc_state=" in response.headers["set-cookie"]


def test_wrong_state_is_refused(oidc: OidcStratus, owner_key: str) -> None:
    with _browser() as browser:
        callback = run_to_callback(oidc, browser, "alice")
        wrong = re.sub(r"state=[^&]+", "state=not-the-state", callback)
        _problem(browser.get(wrong), 400, "oidc-invalid-state")


def test_state_is_single_use(oidc: OidcStratus, owner_key: str) -> None:
    with _browser() as browser:
        callback = run_to_callback(oidc, browser, "alice")
        assert browser.get(callback).status_code == 200
        # Same browser, same state cookie value re-sent: the state is used up.
        state = parse_qs(urlsplit(callback).query)["state"][0]
        browser.cookies.set("stratus_oidc_state", state, path="/api/v1/auth/oidc/")
        _problem(browser.get(callback), 400, "oidc-invalid-state")


def test_callback_in_another_browser_is_refused(oidc: OidcStratus, owner_key: str) -> None:
    """state is bound to the browser that started the sign-in (login CSRF)."""
    with _browser() as browser:
        callback = run_to_callback(oidc, browser, "alice")
    with _browser() as other:
        _problem(other.get(callback), 400, "oidc-invalid-state")


def test_code_without_pkce_verifier_is_refused_by_the_idp(
    oidc: OidcStratus, owner_key: str
) -> None:
    """A stolen authorization code is useless without the verifier Stratus kept."""
    with _browser() as browser:
        callback = run_to_callback(oidc, browser, "alice")
    code = parse_qs(urlsplit(callback).query)["code"][0]
    response = httpx.post(
        oidc.idp.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": oidc.callback_url(),
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_injected_code_fails_pkce_at_the_callback(oidc: OidcStratus, owner_key: str) -> None:
    """An attacker's own sign-in attempt (state + verifier) cannot redeem a victim's code."""
    with _browser() as victim:
        victim_code = parse_qs(urlsplit(run_to_callback(oidc, victim, "alice")).query)["code"][0]
    with _browser() as attacker:
        own = run_to_callback(oidc, attacker, "mallory")
        injected = re.sub(r"code=[^&]+", f"code={victim_code}", own)
        body = _problem(attacker.get(injected), 401, "oidc-code-exchange-failed")
        assert "invalid_grant" in body["detail"]


def test_uninvited_email_is_refused(oidc: OidcStratus, owner_key: str) -> None:
    with _browser() as browser:
        _problem(sign_in(oidc, browser, "mallory"), 403, "not-invited")
        assert "stratus_session" not in browser.cookies


async def _expire_invitation(oidc: OidcStratus, owner_key: str, user_id: str) -> None:
    """Resend the invitation as of two weeks ago (the service's clock, injected): it expired a
    week ago."""
    engine = create_engine(oidc.stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            owner = await api_keys.authenticate(session, owner_key)
            await users.resend_invitation(
                session,
                owner,
                user_id=user_id,
                lifetime=dt.timedelta(days=7),
                now=lambda: utcnow() - dt.timedelta(days=14),
            )
    finally:
        await engine.dispose()


def test_expired_invitation_is_refused_until_resent(oidc: OidcStratus, owner_key: str) -> None:
    """The first sign-in after the invitation expired is refused (403 invitation-expired, no
    session); once an admin resends it, the same sign-in accepts it."""
    with http(oidc.stratus, owner_key) as owner:
        invited = owner.post("/users", json={"email": "dave@example.com", "account_role": "read"})
        assert invited.status_code == 201, invited.text
    user_id = invited.json()["id"]
    asyncio.run(_expire_invitation(oidc, owner_key, user_id))
    with _browser() as browser:
        body = _problem(sign_in(oidc, browser, "dave"), 403, "invitation-expired")
        assert body["detail"].startswith("the invitation of dave@example.com expired at ")
        assert body["detail"].endswith("; ask an account admin to resend it")
        assert "stratus_session" not in browser.cookies
    with http(oidc.stratus, owner_key) as owner:
        assert owner.post(f"/users/{user_id}/invitation").status_code == 200
    with _browser() as browser:
        assert sign_in(oidc, browser, "dave").status_code == 200
    with http(oidc.stratus, owner_key) as owner:
        assert owner.get(f"/users/{user_id}").json()["accepted_at"] is not None


def test_a_user_deactivated_by_scim_loses_its_session_and_cannot_sign_in(
    oidc: OidcStratus, owner_key: str
) -> None:
    """SCIM ``active: false``: the open web session stops at once and sign-in is refused with
    403 user-deactivated; ``active: true`` lets the user sign in again."""
    with http(oidc.stratus, owner_key) as owner:
        token = owner.post("/scim-token").json()["token"]
    scim_headers = {"Authorization": f"Bearer {token}"}
    scim_url = f"{oidc.stratus.api_url}/scim/v2"
    created = httpx.post(
        f"{scim_url}/Users", json={"userName": "frank@example.com"}, headers=scim_headers
    )
    assert created.status_code == 201, created.text
    user_url = f"{scim_url}/Users/{created.json()['id']}"

    def set_active(active: bool) -> None:
        patch = {"Operations": [{"op": "replace", "path": "active", "value": active}]}
        response = httpx.patch(user_url, json=patch, headers=scim_headers)
        assert response.status_code == 200, response.text

    with _browser() as browser:
        assert sign_in(oidc, browser, "frank").status_code == 200
        session_url = f"{oidc.stratus.api_url}/api/v1/auth/session"
        assert browser.get(session_url).status_code == 200
        set_active(False)
        assert browser.get(session_url).status_code == 401
    with _browser() as browser:
        _problem(sign_in(oidc, browser, "frank"), 403, "user-deactivated")
    set_active(True)
    with _browser() as browser:
        assert sign_in(oidc, browser, "frank").status_code == 200


def test_unverified_email_is_refused(oidc: OidcStratus, owner_key: str) -> None:
    with _browser() as browser:
        body = _problem(sign_in(oidc, browser, "carol"), 401, "oidc-invalid-id-token")
        assert body["field"] == "email_verified"


def _forged_sign_in(oidc: OidcStratus, mint: Any) -> httpx.Response:
    oidc.forge.mint = mint
    with _browser() as browser:
        return browser.get(oidc.login_url("forge"), follow_redirects=True)


def test_forge_stub_accepts_a_correct_token(oidc: OidcStratus, owner_key: str) -> None:
    """Control for the refusals below: the stub's well-formed token signs alice in."""
    response = _forged_sign_in(oidc, lambda nonce: oidc.forge.sign(oidc.forge.claims(nonce)))
    assert response.status_code == 200, response.text
    assert oidc.forge.token_requests[-1]["code_verifier"]


def _unsigned(claims: dict[str, Any]) -> str:
    import base64
    import json

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'kid': 'forge-1'})}.{part(claims)}."


@pytest.mark.parametrize(
    ("case", "check"),
    [
        ("missing nonce", "nonce"),
        ("wrong nonce", "nonce"),
        ("wrong aud", "aud"),
        ("wrong iss", "iss"),
        ("expired", "exp"),
        ("alg none", "alg"),
        ("another key", "signature"),
    ],
)
def test_bad_id_token_is_refused(oidc: OidcStratus, owner_key: str, case: str, check: str) -> None:
    forge = oidc.forge
    now = int(time.time())
    other_key = RSAKey.generate_key(2048, parameters={"kid": "forge-1"})
    mints = {
        "missing nonce": lambda n: forge.sign(forge.claims(None)),
        "wrong nonce": lambda n: forge.sign(forge.claims("another-nonce")),
        "wrong aud": lambda n: forge.sign(forge.claims(n, aud="another-client")),
        "wrong iss": lambda n: forge.sign(forge.claims(n, iss="http://127.0.0.1:1")),
        "expired": lambda n: forge.sign(forge.claims(n, iat=now - 900, exp=now - 600)),
        "alg none": lambda n: _unsigned(forge.claims(n)),
        "another key": lambda n: forge.sign(forge.claims(n), key=other_key),
    }
    body = _problem(_forged_sign_in(oidc, mints[case]), 401, "oidc-invalid-id-token")
    assert body["field"] == check


def test_session_post_without_csrf_token_is_refused(oidc: OidcStratus, owner_key: str) -> None:
    with _browser() as browser:
        csrf = sign_in(oidc, browser, "alice").json()["csrf_token"]
        url = f"{oidc.stratus.api_url}/api/v1/namespaces"
        body = {"name": "x"}  # incomplete on purpose: passing CSRF shows as a 422, not a 403
        _problem(browser.post(url, json=body), 403, "csrf")
        _problem(browser.post(url, json=body, headers={"X-CSRF-Token": "wrong"}), 403, "csrf")
        passed = browser.post(url, json=body, headers={"X-CSRF-Token": csrf})
        assert passed.status_code == 422, passed.text
    # API keys are not ambient credentials: no CSRF token needed.
    with http(oidc.stratus, owner_key) as client:
        assert client.post("/namespaces", json=body).status_code == 422


def test_logout_ends_the_session(oidc: OidcStratus, owner_key: str) -> None:
    with _browser() as browser:
        response = sign_in(oidc, browser, "alice")
        csrf = response.json()["csrf_token"]
        token = browser.cookies["stratus_session"]
        api = f"{oidc.stratus.api_url}/api/v1"
        _problem(browser.post(f"{api}/auth/logout"), 403, "csrf")
        logout = browser.post(f"{api}/auth/logout", headers={"X-CSRF-Token": csrf})
        assert logout.status_code == 204
    # The token itself stops working, not just the browser's copy of it.
    with httpx.Client(cookies={"stratus_session": token}) as stale:
        _problem(stale.get(f"{api}/namespaces"), 401, "unauthenticated")
        _problem(stale.get(f"{api}/auth/session"), 401, "unauthenticated")


def test_sign_ins_logouts_and_refusals_are_audited(oidc: OidcStratus, owner_key: str) -> None:
    with _browser() as browser:
        csrf = sign_in(oidc, browser, "alice").json()["csrf_token"]
        browser.post(f"{oidc.stratus.api_url}/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})
    with _browser() as browser:  # a fresh browser: the IdP remembers alice's sign-in
        _problem(sign_in(oidc, browser, "mallory"), 403, "not-invited")
    with http(oidc.stratus, owner_key) as client:
        events = client.get("/audit-logs").json()["audit_logs"]
    actions = {(e["action"], e["outcome"], e["actor"]) for e in events}
    assert ("auth.login", "success", "user:alice@example.com") in actions
    assert ("auth.logout", "success", "user:alice@example.com") in actions
    with sqlite3.connect(oidc.stratus.data_dir / "stratus.db") as db:
        refused = db.execute(
            "SELECT actor, details FROM audit_events WHERE action = 'auth.login' "
            "AND outcome = 'refused' AND actor = 'anonymous:mallory@example.com'"
        ).fetchall()
    assert refused
    assert "not-invited" in refused[-1][1]
