"""One account's SAML 2.0 service provider, on pysaml2 (XML signatures checked by xmlsec1).

pysaml2 is synchronous and runs xmlsec1 as a subprocess: callers run these functions in a
worker thread. Nothing here touches the database.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import Element

from cryptography import x509
from defusedxml import ElementTree

# pysaml2 (with pyOpenSSL and xmlschema: about 0.6 s of CPU) is imported by the functions that
# use it, so a process that never handles SAML (every API start, the CLI) does not pay for it.
if TYPE_CHECKING:
    from saml2.config import SPConfig

# Assertions are accepted this far outside their validity window (clock skew with the IdP).
CLOCK_SKEW_SECONDS = 60
MAX_METADATA_BYTES = 512 * 1024

_PROTOCOL = "{urn:oasis:names:tc:SAML:2.0:protocol}"
_ASSERTION = "{urn:oasis:names:tc:SAML:2.0:assertion}"
_DSIG = "{http://www.w3.org/2000/09/xmldsig#}"
_EMAIL_ATTRIBUTES = ("email", "mail", "emailaddress", "urn:oid:0.9.2342.19200300.100.1.3")


class MetadataRejected(Exception):
    """The uploaded IdP metadata is unusable; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ResponseRejected(Exception):
    """A SAML response failed a check; ``check`` names it (``signature``, ``audience``, ...)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check
        self.message = message


@dataclass(frozen=True)
class SpUrls:
    """Where one account's SP lives. The entity id is also the metadata URL."""

    entity_id: str
    acs_url: str

    @classmethod
    def for_account(cls, base_url: str, account_id: str) -> SpUrls:
        prefix = f"{base_url.rstrip('/')}/api/v1/auth/saml/{account_id}"
        return cls(entity_id=f"{prefix}/metadata", acs_url=f"{prefix}/acs")


@dataclass(frozen=True)
class IdpMetadata:
    entity_id: str
    sso_url: str
    signing_cert_sha256: list[str]


@dataclass(frozen=True)
class VerifiedAssertion:
    assertion_id: str
    email: str
    not_on_or_after: dt.datetime
    # Every attribute of the assertion: name (pysaml2's friendly name when it knows one) →
    # values.
    attributes: dict[str, list[str]]


def _xmlsec_binary() -> str:
    binary = shutil.which("xmlsec1")
    if binary is None:
        raise RuntimeError("SAML needs the xmlsec1 binary (Debian package xmlsec1)")
    return binary


def _sp_config(urls: SpUrls, idp_metadata_xml: str | None) -> SPConfig:
    from saml2 import BINDING_HTTP_POST
    from saml2.config import SPConfig
    from saml2.saml import NAMEID_FORMAT_EMAILADDRESS
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    config = SPConfig()
    config.load(
        {
            "entityid": urls.entity_id,
            "xmlsec_binary": _xmlsec_binary(),
            "metadata": {"inline": [idp_metadata_xml]} if idp_metadata_xml else {},
            "accepted_time_diff": CLOCK_SKEW_SECONDS,
            "allow_unknown_attributes": True,
            "service": {
                "sp": {
                    "endpoints": {
                        "assertion_consumer_service": [(urls.acs_url, BINDING_HTTP_POST)]
                    },
                    "name_id_format": NAMEID_FORMAT_EMAILADDRESS,
                    "authn_requests_signed": False,
                    # Only answers to requests we issued (InResponseTo).
                    "allow_unsolicited": False,
                    # Either the Response or its Assertion must carry a valid signature.
                    "want_response_signed": False,
                    "want_assertions_signed": False,
                    "want_assertions_or_response_signed": True,
                    "signing_algorithm": SIG_RSA_SHA256,
                    "digest_algorithm": DIGEST_SHA256,
                }
            },
        }
    )
    return config


def sp_metadata(urls: SpUrls) -> str:
    """The SP's metadata XML (entity id, ACS with the HTTP-POST binding)."""
    from saml2.metadata import create_metadata_string

    metadata = create_metadata_string(None, config=_sp_config(urls, None))
    return metadata.decode() if isinstance(metadata, bytes) else str(metadata)


def parse_idp_metadata(xml: str) -> IdpMetadata:
    """Validate an IdP's metadata: it parses, describes exactly one IdP with an HTTP-Redirect
    single sign-on endpoint and at least one signing certificate."""
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.attribute_converter import ac_factory
    from saml2.config import Config
    from saml2.mdstore import MetadataStore

    if len(xml.encode()) > MAX_METADATA_BYTES:
        raise MetadataRejected(f"the metadata is larger than {MAX_METADATA_BYTES} bytes")
    store = MetadataStore(ac_factory(), Config())
    try:
        store.load("inline", xml)
        idps = list(store.identity_providers())
    except Exception as error:
        raise MetadataRejected(f"the metadata does not parse as SAML metadata: {error}") from None
    if len(idps) != 1:
        raise MetadataRejected(f"the metadata must describe one IdP, it describes {len(idps)}")
    entity_id: str = idps[0]
    endpoints = list(store.single_sign_on_service(entity_id, BINDING_HTTP_REDIRECT))
    if not endpoints:
        raise MetadataRejected("the IdP has no SingleSignOnService with the HTTP-Redirect binding")
    fingerprints = []
    # (key name, base64 DER) pairs.
    for _, cert_body in store.certs(entity_id, "idpsso", use="signing"):
        try:
            der = base64.b64decode("".join(str(cert_body).split()))
            x509.load_der_x509_certificate(der)
        except (ValueError, binascii.Error):
            raise MetadataRejected("a signing certificate of the IdP does not parse") from None
        fingerprints.append(hashlib.sha256(der).hexdigest())
    if not fingerprints:
        raise MetadataRejected("the IdP publishes no signing certificate")
    return IdpMetadata(
        entity_id=entity_id, sso_url=str(endpoints[0]["location"]), signing_cert_sha256=fingerprints
    )


def authn_request(
    urls: SpUrls, idp_metadata_xml: str, idp_entity_id: str, relay_state: str = ""
) -> tuple[str, str]:
    """An AuthnRequest for the HTTP-Redirect binding: its id and the IdP URL carrying it
    (with ``relay_state``, which the IdP returns unchanged)."""
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client

    client = Saml2Client(config=_sp_config(urls, idp_metadata_xml))
    request_id, info = client.prepare_for_authenticate(
        entityid=idp_entity_id, binding=BINDING_HTTP_REDIRECT, relay_state=relay_state
    )
    location = dict(info["headers"])["Location"]
    return str(request_id), str(location)


def _attribute(element: Element, name: str) -> str | None:
    value = element.get(name)
    return None if value is None else str(value)


def in_response_to(saml_response: str) -> str | None:
    """Decode the posted response and run the structural checks pysaml2 does not: exactly one
    assertion anywhere in the document (a signed assertion moved next to a forged one — XML
    signature wrapping — is refused here), no encrypted assertion, and every signature
    RSA-SHA256 over SHA-256 digests. Returns the response's ``InResponseTo``."""
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    try:
        xml = base64.b64decode(saml_response, validate=True)
        root = ElementTree.fromstring(xml, forbid_dtd=True)
    except (ValueError, binascii.Error, ElementTree.ParseError) as error:
        raise ResponseRejected("syntax", f"SAMLResponse is not base64 XML: {error}") from None
    except Exception:
        raise ResponseRejected("syntax", "SAMLResponse contains forbidden XML") from None
    if root.tag != f"{_PROTOCOL}Response":
        raise ResponseRejected("syntax", "SAMLResponse is not a samlp:Response")
    assertions = list(root.iter(f"{_ASSERTION}Assertion"))
    if len(assertions) != 1 or any(root.iter(f"{_ASSERTION}EncryptedAssertion")):
        raise ResponseRejected(
            "assertion_count", f"the response must hold one assertion, not {len(assertions)}"
        )
    for signature in root.iter(f"{_DSIG}Signature"):
        methods = [
            _attribute(method, "Algorithm") for method in signature.iter(f"{_DSIG}SignatureMethod")
        ]
        digests = [
            _attribute(method, "Algorithm") for method in signature.iter(f"{_DSIG}DigestMethod")
        ]
        if methods != [SIG_RSA_SHA256] or not digests or set(digests) != {DIGEST_SHA256}:
            raise ResponseRejected(
                "signature_algorithm", "signatures must be RSA-SHA256 with SHA-256 digests"
            )
    return _attribute(root, "InResponseTo")


def _check_of(error: Exception) -> str:
    from saml2.response import UnsolicitedResponse
    from saml2.sigver import SignatureError, SigverError
    from saml2.validate import ResponseLifetimeExceed, ToEarly

    if isinstance(error, UnsolicitedResponse):
        return "in_response_to"
    if isinstance(error, SignatureError | SigverError):
        return "signature"
    if isinstance(error, ResponseLifetimeExceed):
        return "not_on_or_after"
    if isinstance(error, ToEarly):
        return "not_before"
    if "AudienceRestriction" in str(error):
        return "audience"
    if "Condition not OK" in str(error):
        # The validity window (NotBefore / NotOnOrAfter of the conditions).
        return "conditions"
    return "response"


def _timestamp(value: Any) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(str(value)).astimezone(dt.UTC)


def _email(name_id_text: str | None, attributes: dict[str, list[str]]) -> str | None:
    for name, values in attributes.items():
        if name.lower() in _EMAIL_ATTRIBUTES and values:
            return str(values[0])
    if name_id_text and "@" in name_id_text:
        return name_id_text.strip()
    return None


def verify_response(
    urls: SpUrls, idp_metadata_xml: str, saml_response: str, request_id: str
) -> VerifiedAssertion:
    """pysaml2's checks: a valid signature on the Response or the Assertion by a signing key of
    the IdP's metadata, audience (our entity id), Destination and Recipient (our ACS), the
    validity window, and ``InResponseTo`` == ``request_id``."""
    from saml2 import BINDING_HTTP_POST
    from saml2.client import Saml2Client

    client = Saml2Client(config=_sp_config(urls, idp_metadata_xml))
    try:
        response = client.parse_authn_request_response(
            saml_response, BINDING_HTTP_POST, outstanding={request_id: "/"}
        )
    except Exception as error:
        raise ResponseRejected(_check_of(error), str(error) or type(error).__name__) from None
    if response is None or response.assertion is None:
        raise ResponseRejected("response", "the response carries no usable assertion")
    assertion = response.assertion
    confirmations = assertion.subject.subject_confirmation if assertion.subject else []
    ends = [
        _timestamp(c.subject_confirmation_data.not_on_or_after)
        for c in confirmations
        if c.subject_confirmation_data is not None
    ]
    if assertion.conditions is not None:
        ends.append(_timestamp(assertion.conditions.not_on_or_after))
    known_ends = [end for end in ends if end is not None]
    if not known_ends:
        raise ResponseRejected("not_on_or_after", "the assertion has no NotOnOrAfter")
    name_id = response.name_id
    email = _email(name_id.text if name_id is not None else None, response.ava or {})
    if email is None:
        raise ResponseRejected("email", "neither the NameID nor an email attribute is an email")
    return VerifiedAssertion(
        assertion_id=str(assertion.id),
        email=email,
        not_on_or_after=max(known_ends),
        attributes={
            str(name): [str(value) for value in values]
            for name, values in (response.ava or {}).items()
            if isinstance(values, list)
        },
    )
