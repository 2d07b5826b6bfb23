"""Why a SAML sign-in is refused; each is a stable problem ``type`` (``field`` names the failed
check where there is one)."""

from __future__ import annotations

from controlplane.kit.errors import NotFound
from controlplane.sign_in.errors import SignInRefused


class SamlNotConfigured(NotFound):
    slug = "saml-not-configured"
    title = "The account has no SAML identity provider"


class SamlInvalidResponse(SignInRefused):
    slug = "saml-invalid-response"
    title = "The SAML response failed verification"


class SamlUnknownRequest(SignInRefused):
    status = 400
    slug = "saml-unknown-request"
    title = "The SAML response answers no request this service provider has open"


class SamlReplayedAssertion(SignInRefused):
    slug = "saml-replayed-assertion"
    title = "The SAML assertion was already used"
