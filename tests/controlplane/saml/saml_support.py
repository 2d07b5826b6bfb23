"""A pysaml2 IdP in-process, signing with its own RSA key, wired to one account of the shared
``stratus up``: the SP's metadata is fetched from Stratus and loaded into the IdP, the IdP's
metadata uploaded by the account owner. The test acts as the browser."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from identity_support import invite
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig, SPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_EMAILADDRESS, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256
from support import StratusUp, http, new_tenant

IDP_ENTITY_ID = "https://idp.saml.test/metadata"
IDP_SSO_URL = "https://idp.saml.test/sso"
OTHER_SP_ENTITY_ID = "https://other-sp.saml.test/metadata"
INVITED = "alice@saml.example"
AUTHN = {
    "class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:Password",
    "authn_auth": IDP_ENTITY_ID,
}


def write_key_pair(directory: Path, name: str) -> tuple[str, str]:
    """A fresh RSA-2048 key and self-signed certificate in PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_file, cert_file = directory / f"{name}.key", directory / f"{name}.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_file), str(cert_file)


def _text(metadata: str | bytes) -> str:
    return metadata.decode() if isinstance(metadata, bytes) else metadata


def other_sp_metadata() -> str:
    """Another service provider the IdP knows (for responses addressed to someone else)."""
    config = SPConfig()
    config.load(
        {
            "entityid": OTHER_SP_ENTITY_ID,
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [
                            ("https://other-sp.saml.test/acs", BINDING_HTTP_POST)
                        ]
                    }
                }
            },
        }
    )
    return _text(create_metadata_string(None, config=config))


def idp_server(
    key_pair: tuple[str, str], sp_metadata: list[str], lifetime_minutes: int = 5
) -> Server:
    config = IdPConfig()
    config.load(
        {
            "entityid": IDP_ENTITY_ID,
            "xmlsec_binary": shutil.which("xmlsec1"),
            "metadata": {"inline": sp_metadata} if sp_metadata else {},
            "key_file": key_pair[0],
            "cert_file": key_pair[1],
            "service": {
                "idp": {
                    "endpoints": {"single_sign_on_service": [(IDP_SSO_URL, BINDING_HTTP_REDIRECT)]},
                    "name_id_format": [NAMEID_FORMAT_EMAILADDRESS],
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                    "policy": {
                        "default": {
                            "lifetime": {"minutes": lifetime_minutes},
                            "attribute_restrictions": None,
                            "name_form": NAME_FORMAT_URI,
                        }
                    },
                }
            },
        }
    )
    return Server(config=config)


@dataclass
class SamlStratus:
    stratus: StratusUp
    account_id: str
    owner_key: str
    idp: Server
    key_dir: Path
    key_pair: tuple[str, str]
    sp_metadata: list[str]

    @property
    def prefix(self) -> str:
        return f"/auth/saml/{self.account_id}"

    @property
    def sp_entity_id(self) -> str:
        return f"{self.stratus.api_url}/api/v1{self.prefix}/metadata"

    def browser(self) -> httpx.Client:
        return http(self.stratus, None)

    def idp_metadata(self) -> str:
        return _text(create_metadata_string(None, config=self.idp.config))

    def start_login(self, browser: httpx.Client) -> tuple[str, str]:
        """GET the SP's login URL and follow it to the IdP (in-process): the AuthnRequest's id
        and the ACS it asks the answer to be posted to."""
        response = browser.get(f"{self.prefix}/login")
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(IDP_SSO_URL + "?")
        saml_request = parse_qs(urlsplit(location).query)["SAMLRequest"][0]
        request = self.idp.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT)
        return str(request.message.id), str(request.message.assertion_consumer_service_url)

    def respond(
        self,
        request_id: str,
        acs_url: str,
        *,
        email: str = INVITED,
        idp: Server | None = None,
        sp_entity_id: str | None = None,
        sign_response: bool = True,
        sign_assertion: bool = False,
        groups: list[str] | None = None,
        **kwargs: Any,
    ) -> str:
        """The IdP's response XML for the request (signed as asked); ``groups``, when given,
        is the ``groups`` attribute's values."""
        identity = {"email": [email]} if groups is None else {"email": [email], "groups": groups}
        return str(
            (idp or self.idp).create_authn_response(
                identity,
                in_response_to=request_id,
                destination=acs_url,
                sp_entity_id=sp_entity_id or self.sp_entity_id,
                name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=email),
                sign_response=sign_response,
                sign_assertion=sign_assertion,
                authn=AUTHN,
                **kwargs,
            )
        )

    def post_acs(self, browser: httpx.Client, response_xml: str) -> httpx.Response:
        encoded = base64.b64encode(response_xml.encode()).decode()
        return browser.post(f"{self.prefix}/acs", data={"SAMLResponse": encoded})

    def other_idp(self, name: str, *, lifetime_minutes: int = 5) -> Server:
        """An IdP with the same entity id; ``name`` is its key pair (a new one, or ``idp``)."""
        key_pair = write_key_pair(self.key_dir, name) if name != "idp" else self.key_pair
        return idp_server(key_pair, self.sp_metadata, lifetime_minutes)


@pytest.fixture(scope="module")
def saml(stratus: StratusUp, tmp_path_factory: pytest.TempPathFactory) -> SamlStratus:
    tenant = new_tenant(stratus, "Samlco")
    key_dir = tmp_path_factory.mktemp("saml-idp")
    key_pair = write_key_pair(key_dir, "idp")
    with http(stratus, None) as client:
        response = client.get(f"/auth/saml/{tenant.account_id}/metadata")
        assert response.status_code == 200, response.text
    sp_metadata = [response.text, other_sp_metadata()]
    idp = idp_server(key_pair, sp_metadata)
    setup = SamlStratus(
        stratus, tenant.account_id, tenant.api_key, idp, key_dir, key_pair, sp_metadata
    )
    with http(stratus, tenant.api_key) as client:
        uploaded = client.post("/saml/idp-metadata", json={"metadata_xml": setup.idp_metadata()})
        assert uploaded.status_code == 200, uploaded.text
    invite(stratus, tenant.api_key, INVITED, "developer")
    return setup
