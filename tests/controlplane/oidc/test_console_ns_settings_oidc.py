"""OIDC sign-in into the console over HTTP (the test is the browser): a login started with a
console ``return_to`` ends with the session cookie and a 303 to that page; a foreign
``return_to`` is refused at the start, a forged return cookie is ignored at the callback (the
API's JSON answer), and a refused console sign-in lands on the console's sign-in page."""

from __future__ import annotations

import httpx
import pytest
from identity_support import assert_problem
from oidc_support import OidcStratus
from test_oidc_sign_in import run_to_callback


def _browser() -> httpx.Client:
    return httpx.Client(timeout=30, follow_redirects=False)


def test_a_console_sign_in_lands_on_the_console_page(oidc: OidcStratus, owner_key: str) -> None:
    with _browser() as browser:
        callback = run_to_callback(
            oidc, browser, "alice", url=oidc.login_url(return_to="/settings")
        )
        answered = browser.get(callback)
        assert answered.status_code == 303, answered.text
        assert answered.headers["location"] == "/settings"
        assert "stratus_session" in browser.cookies
        page = browser.get(oidc.stratus.api_url + "/settings")
        assert page.status_code == 200, page.text
        assert "alice@example.com" in page.text
        assert "test-idp" in page.text  # the installation's providers, read-only


@pytest.mark.parametrize(
    "evil", ["https://evil.example/", "//evil.example/x", "/api/v1/namespaces", "/\\evil.example"]
)
def test_a_foreign_return_to_is_refused_at_the_start(oidc: OidcStratus, evil: str) -> None:
    with _browser() as browser:
        refused = browser.get(oidc.login_url(return_to=evil))
    assert_problem(refused, 400, "invalid-field")
    assert refused.json()["field"] == "return_to"
    assert "stratus_oidc_state" not in refused.headers.get("set-cookie", "")


def test_a_forged_return_cookie_is_ignored(oidc: OidcStratus, owner_key: str) -> None:
    with _browser() as browser:
        callback = run_to_callback(oidc, browser, "alice")
        state = browser.cookies["stratus_oidc_state"]
        answered = browser.get(
            callback,
            headers={
                "Cookie": f"stratus_oidc_state={state}; stratus_console_return=//evil.example"
            },
        )
    assert answered.status_code == 200, answered.text
    assert answered.json()["email"] == "alice@example.com"


def test_a_refused_console_sign_in_lands_on_the_sign_in_page(
    oidc: OidcStratus, owner_key: str
) -> None:
    with _browser() as browser:
        callback = run_to_callback(
            oidc, browser, "mallory", url=oidc.login_url(return_to="/namespaces")
        )
        answered = browser.get(callback)
        assert answered.status_code == 303, answered.text
        assert answered.headers["location"] == "/sign-in?note=refused"
        assert "stratus_session" not in browser.cookies
        page = browser.get(oidc.stratus.api_url + answered.headers["location"])
    assert "sign-in was refused" in page.text


def test_a_sign_in_returns_to_the_console_or_the_cli_not_both(oidc: OidcStratus) -> None:
    with _browser() as browser:
        refused = browser.get(
            oidc.login_url(
                return_to="/namespaces",
                cli_redirect="http://127.0.0.1:9/callback",
                cli_challenge="a" * 43,
            )
        )
    assert_problem(refused, 400, "invalid-field")
