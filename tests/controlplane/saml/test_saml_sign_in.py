"""SAML sign-in per account against an in-process pysaml2 IdP that signs with its own key:
the test is the browser (login redirect → IdP → POST to the ACS → session cookie), and each
refusal answers its exact problem."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from group_support import add_member, create_group, memberships
from identity_support import assert_problem, invite, user_with_key
from saml2 import BINDING_HTTP_REDIRECT
from saml_support import INVITED, OTHER_SP_ENTITY_ID, SamlStratus
from support import http


def test_sp_metadata_names_the_account_entity_and_its_acs(saml: SamlStratus) -> None:
    with saml.browser() as browser:
        response = browser.get(f"{saml.prefix}/metadata")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/samlmetadata+xml")
        assert f'entityID="{saml.sp_entity_id}"' in response.text
        assert "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" in response.text
        assert saml.sp_entity_id.removesuffix("/metadata") + "/acs" in response.text
        assert_problem(
            browser.get("/auth/saml/no-such-account/metadata"), 404, "saml-not-configured"
        )


def test_a_forged_host_header_does_not_change_the_sp_urls(saml: SamlStratus) -> None:
    """The entity id and ACS URL come from the configured public URL (here the API's own),
    never from the request's Host or X-Forwarded-Host: an attacker's Host is not announced in
    the metadata nor in the AuthnRequest's ACS."""
    forged = {"Host": "evil.example.test", "X-Forwarded-Host": "evil.example.test"}
    with saml.browser() as browser:
        honest = browser.get(f"{saml.prefix}/metadata")
        response = browser.get(f"{saml.prefix}/metadata", headers=forged)
        assert response.status_code == 200
        assert response.text == honest.text
        assert f'entityID="{saml.sp_entity_id}"' in response.text
        assert "evil.example.test" not in response.text
        login = browser.get(f"{saml.prefix}/login", headers=forged)
    assert login.status_code == 302
    saml_request = parse_qs(urlsplit(login.headers["location"]).query)["SAMLRequest"][0]
    request = saml.idp.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT)
    acs_url = str(request.message.assertion_consumer_service_url)
    assert acs_url == saml.sp_entity_id.removesuffix("/metadata") + "/acs"


@pytest.mark.parametrize(
    ("sign_response", "sign_assertion"),
    [(True, False), (False, True)],
    ids=["response", "assertion"],
)
def test_signed_response_or_assertion_signs_the_invited_user_in(
    saml: SamlStratus, sign_response: bool, sign_assertion: bool
) -> None:
    """Either signature suffices; the email matches the invitation case-insensitively and the
    session cookie authenticates API calls as that user."""
    with saml.browser() as browser:
        request_id, acs_url = saml.start_login(browser)
        assert acs_url == saml.sp_entity_id.removesuffix("/metadata") + "/acs"
        xml = saml.respond(
            request_id,
            acs_url,
            email="Alice@SAML.example",
            sign_response=sign_response,
            sign_assertion=sign_assertion,
        )
        response = saml.post_acs(browser, xml)
        assert response.status_code == 200, response.text
        session = response.json()
        assert session["email"] == INVITED
        assert session["account_id"] == saml.account_id
        assert session["identity_provider"] == "saml"
        set_cookie = response.headers["set-cookie"].lower()
        assert "stratus_session=" in set_cookie
        assert "httponly" in set_cookie
        assert "samesite=lax" in set_cookie
        identity = browser.get("/current-identity")
        assert identity.status_code == 200, identity.text
        assert identity.json()["account_id"] == saml.account_id


def _refused(saml: SamlStratus, xml: str, status: int, problem: str) -> dict[str, object]:
    with saml.browser() as browser:
        response = saml.post_acs(browser, xml)
        assert_problem(response, status, problem)
        assert "stratus_session" not in response.headers.get("set-cookie", "")
        body: dict[str, object] = response.json()
        return body


def _fresh_request(saml: SamlStratus) -> tuple[str, str]:
    with saml.browser() as browser:
        return saml.start_login(browser)


def test_unsigned_response_is_refused(saml: SamlStratus) -> None:
    xml = saml.respond(*_fresh_request(saml), sign_response=False, sign_assertion=False)
    body = _refused(saml, xml, 401, "saml-invalid-response")
    assert body["field"] == "signature"


@pytest.mark.parametrize("element", ["NameID", "AttributeValue"])
def test_tampered_name_id_or_attribute_is_refused(saml: SamlStratus, element: str) -> None:
    """An invited user's email edited into a response signed for someone else."""
    xml = saml.respond(*_fresh_request(saml), email="mallory@saml.example")
    tampered, count = re.subn(
        rf"(<ns\d:{element}[^>]*>)mallory@saml\.example<", rf"\g<1>{INVITED}<", xml
    )
    assert count == 1
    body = _refused(saml, tampered, 401, "saml-invalid-response")
    assert body["field"] == "signature"


def test_signature_by_another_key_is_refused(saml: SamlStratus) -> None:
    impostor = saml.other_idp("impostor")
    xml = saml.respond(*_fresh_request(saml), idp=impostor)
    body = _refused(saml, xml, 401, "saml-invalid-response")
    assert body["field"] == "signature"


def test_signature_wrapping_is_refused(saml: SamlStratus) -> None:
    """A genuinely signed assertion (for an uninvited user) moved next to a forged, unsigned
    one for the invited user."""
    signed = saml.respond(
        *_fresh_request(saml),
        email="mallory@saml.example",
        sign_response=False,
        sign_assertion=True,
    )
    match = re.search(r"<ns\d:Assertion .*?</ns\d:Assertion>", signed, re.S)
    assert match
    forged = re.sub(r"<ns\d:Signature .*?</ns\d:Signature>", "", match.group(0), flags=re.S)
    forged = forged.replace("mallory@saml.example", INVITED).replace(' ID="', ' ID="forged-', 1)
    for wrapped in (
        signed.replace(match.group(0), forged + match.group(0)),
        signed.replace(match.group(0), match.group(0) + forged),
    ):
        body = _refused(saml, wrapped, 401, "saml-invalid-response")
        assert body["field"] == "assertion_count"


def test_wrong_audience_is_refused(saml: SamlStratus) -> None:
    """Signed by our IdP, posted to our ACS, but issued for another service provider."""
    xml = saml.respond(*_fresh_request(saml), sp_entity_id=OTHER_SP_ENTITY_ID)
    body = _refused(saml, xml, 401, "saml-invalid-response")
    assert body["field"] == "audience"


def test_expired_assertion_is_refused(saml: SamlStratus) -> None:
    stale_idp = saml.other_idp("idp", lifetime_minutes=-10)
    xml = saml.respond(*_fresh_request(saml), idp=stale_idp)
    body = _refused(saml, xml, 401, "saml-invalid-response")
    assert body["field"] == "conditions"


def test_sha1_signature_is_refused(saml: SamlStratus) -> None:
    xml = saml.respond(
        *_fresh_request(saml),
        sign_alg="http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        digest_alg="http://www.w3.org/2000/09/xmldsig#sha1",
    )
    body = _refused(saml, xml, 401, "saml-invalid-response")
    assert body["field"] == "signature_algorithm"


def test_unknown_in_response_to_is_refused(saml: SamlStratus) -> None:
    """A validly signed response to a request this SP never issued (IdP-initiated or forged)."""
    _, acs_url = _fresh_request(saml)
    xml = saml.respond("id-never-issued", acs_url)
    body = _refused(saml, xml, 400, "saml-unknown-request")
    assert body["field"] == "in_response_to"


def test_replayed_assertion_is_refused(saml: SamlStratus) -> None:
    xml = saml.respond(*_fresh_request(saml))
    with saml.browser() as browser:
        assert saml.post_acs(browser, xml).status_code == 200
    _refused(saml, xml, 401, "saml-replayed-assertion")


def test_uninvited_email_is_refused_and_audited(saml: SamlStratus) -> None:
    xml = saml.respond(*_fresh_request(saml), email="stranger@saml.example")
    _refused(saml, xml, 403, "not-invited")
    with http(saml.stratus, saml.owner_key) as client:
        events = client.get("/audit-logs").json()["audit_logs"]
    refusals = [
        event
        for event in events
        if event["action"] == "auth.login" and event["outcome"] == "refused"
    ]
    assert refusals[0]["details"]["reason"] == "not-invited"
    assert refusals[0]["actor"] == "anonymous:stranger@saml.example"
    assert refusals[0]["target"] == f"saml:{saml.account_id}"


def test_a_user_deactivated_by_scim_is_refused(saml: SamlStratus) -> None:
    with http(saml.stratus, saml.owner_key) as client:
        token = client.post("/scim-token").json()["token"]
    with httpx.Client(
        base_url=f"{saml.stratus.api_url}/scim/v2",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    ) as scim:
        created = scim.post("/Users", json={"userName": "gone@saml.example", "active": False})
    assert created.status_code == 201, created.text
    assert created.json()["active"] is False
    xml = saml.respond(*_fresh_request(saml), email="gone@saml.example")
    _refused(saml, xml, 403, "user-deactivated")


def test_idp_metadata_upload_is_validated(saml: SamlStratus) -> None:
    with http(saml.stratus, saml.owner_key) as client:
        response = client.post("/saml/idp-metadata", json={"metadata_xml": "<not-xml"})
        assert_problem(response, 400, "invalid-field")
        assert response.json()["field"] == "metadata_xml"
        without_cert = re.sub(
            r"<ns\d:KeyDescriptor.*?</ns\d:KeyDescriptor>", "", saml.idp_metadata(), flags=re.S
        )
        response = client.post("/saml/idp-metadata", json={"metadata_xml": without_cert})
        assert_problem(response, 400, "invalid-field")
        assert "signing certificate" in response.json()["detail"]
        response = client.post("/saml/idp-metadata", json={"metadata_xml": saml.idp_metadata()})
        assert response.status_code == 200, response.text
        assert response.json()["idp_entity_id"] == "https://idp.saml.test/metadata"
        events = client.get("/audit-logs").json()["audit_logs"]
        assert any(event["action"] == "saml.idp_metadata.update" for event in events)


def test_only_owner_or_admin_may_upload_idp_metadata(saml: SamlStratus) -> None:
    _, developer_key = user_with_key(saml.stratus, saml.owner_key, "dev@saml.example", "developer")
    with http(saml.stratus, developer_key) as client:
        response = client.post("/saml/idp-metadata", json={"metadata_xml": saml.idp_metadata()})
    assert_problem(response, 403, "forbidden")


def test_group_attribute_sets_the_idp_memberships_at_each_sign_in(saml: SamlStratus) -> None:
    """The account maps IdP group ``eng`` to an admin group: a response whose ``groups``
    attribute holds it (among unmapped values) makes the user an ``idp`` member and the session
    an admin's; the next one without it ([] or no attribute) removes that membership, and the
    manual one stays. Audited once per sign-in that changed something."""
    stratus = saml.stratus
    user = invite(stratus, saml.owner_key, "grace@saml.example", "read")
    admins = create_group(stratus, saml.account_id, "saml-admins", account_role="admin")
    readers = create_group(stratus, saml.account_id, "saml-readers")
    add_member(stratus, saml.account_id, readers, user["id"])
    with http(stratus, saml.owner_key) as owner:
        put = owner.put(
            "/group-claims", json={"mappings": [{"idp_group": "eng", "group_id": admins}]}
        )
        assert put.status_code == 200, put.text

    def sign_in(groups: list[str] | None) -> int:
        with saml.browser() as browser:
            request_id, acs_url = saml.start_login(browser)
            xml = saml.respond(request_id, acs_url, email="grace@saml.example", groups=groups)
            assert saml.post_acs(browser, xml).status_code == 200
            return browser.get("/audit-logs").status_code

    assert sign_in(["other", "eng"]) == 200
    assert memberships(stratus, user["id"]) == {admins: "idp", readers: "manual"}
    assert sign_in([]) == 403
    assert memberships(stratus, user["id"]) == {readers: "manual"}
    assert sign_in(["eng"]) == 200
    assert sign_in(None) == 403
    assert memberships(stratus, user["id"]) == {readers: "manual"}
    with http(stratus, saml.owner_key) as owner:
        events = owner.get(
            "/audit-logs", params={"action": "group_claims.sync", "page_size": 10}
        ).json()["audit_logs"]
        assert owner.delete("/group-claims").status_code == 204
    assert [(e["details"]["added"], e["details"]["removed"]) for e in events] == [
        ([], [admins]),
        ([admins], []),
        ([], [admins]),
        ([admins], []),
    ]
    assert {e["details"]["method"] for e in events} == {"saml"}
