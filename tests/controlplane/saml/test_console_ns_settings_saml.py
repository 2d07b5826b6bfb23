"""SAML sign-in into the console (the test is the browser, as in test_saml_sign_in): a login
started with a console ``return_to`` carries it as the RelayState, and the ACS answers with
the session cookie and a 303 there; a foreign ``return_to`` is refused at the start and a
foreign RelayState is ignored (the API's JSON answer); the signed-in owner then replaces the
IdP through the console's settings page (audited)."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from identity_support import assert_problem
from saml2 import BINDING_HTTP_REDIRECT
from saml_support import INVITED, SamlStratus

OWNER = "owner@samlco.example"


def _login(saml: SamlStratus, browser: httpx.Client, return_to: str) -> tuple[str, str, str]:
    """Start a console sign-in: the AuthnRequest's id, its ACS and the RelayState sent."""
    response = browser.get(f"{saml.prefix}/login", params={"return_to": return_to})
    assert response.status_code == 302, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    request = saml.idp.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT)
    return (
        str(request.message.id),
        str(request.message.assertion_consumer_service_url),
        query["RelayState"][0],
    )


def _post_acs(
    saml: SamlStratus, browser: httpx.Client, xml: str, relay_state: str
) -> httpx.Response:
    encoded = base64.b64encode(xml.encode()).decode()
    return browser.post(
        f"{saml.prefix}/acs", data={"SAMLResponse": encoded, "RelayState": relay_state}
    )


def test_a_console_sign_in_lands_on_the_console_page_signed_in(saml: SamlStratus) -> None:
    console = saml.stratus.api_url
    with saml.browser() as browser:
        request_id, acs_url, relay_state = _login(saml, browser, "/settings")
        assert relay_state == "/settings"
        answered = _post_acs(
            saml, browser, saml.respond(request_id, acs_url, email=OWNER), relay_state
        )
        assert answered.status_code == 303, answered.text
        assert answered.headers["location"] == "/settings"
        set_cookie = answered.headers["set-cookie"].lower()
        assert "stratus_session=" in set_cookie
        assert "httponly" in set_cookie

        page = browser.get(console + "/settings")
        assert page.status_code == 200, page.text
        assert OWNER in page.text
        assert "Replace identity provider" in page.text

        token = browser.get("/auth/session").json()["csrf_token"]
        saved = browser.post(
            console + "/settings/saml",
            data={"csrf_token": token},
            files={"metadata_file": ("idp.xml", saml.idp_metadata().encode(), "text/xml")},
        )
        assert saved.status_code == 303, saved.text
        assert saved.headers["location"] == "/settings?note=saml-saved"
        events = browser.get("/audit-logs").json()["audit_logs"]
    update = next(e for e in events if e.get("action") == "saml.idp_metadata.update")
    assert OWNER in update["actor"]


@pytest.mark.parametrize(
    "evil", ["https://evil.example/", "//evil.example/x", "/api/v1/namespaces", "namespaces"]
)
def test_a_foreign_return_to_is_refused_at_the_start(saml: SamlStratus, evil: str) -> None:
    with saml.browser() as browser:
        refused = browser.get(f"{saml.prefix}/login", params={"return_to": evil})
    assert_problem(refused, 400, "invalid-field")
    assert refused.json()["field"] == "return_to"


@pytest.mark.parametrize("evil", ["https://evil.example/", "//evil.example/x", "/api/v1/x"])
def test_a_foreign_relay_state_is_ignored(saml: SamlStratus, evil: str) -> None:
    """An IdP (or anyone posting a valid response) cannot send the browser elsewhere: the
    ACS answers as it does for an API client."""
    with saml.browser() as browser:
        request_id, acs_url = saml.start_login(browser)
        answered = _post_acs(saml, browser, saml.respond(request_id, acs_url), evil)
    assert answered.status_code == 200, answered.text
    assert answered.json()["email"] == INVITED
    assert "location" not in answered.headers


def test_a_refused_console_sign_in_lands_on_the_sign_in_page(saml: SamlStratus) -> None:
    with saml.browser() as browser:
        request_id, acs_url, relay_state = _login(saml, browser, "/namespaces")
        xml = saml.respond(request_id, acs_url, email="stranger@samlco.example")
        answered = _post_acs(saml, browser, xml, relay_state)
    assert answered.status_code == 303, answered.text
    assert answered.headers["location"] == "/sign-in?note=refused"
    assert "stratus_session" not in answered.headers.get("set-cookie", "")
