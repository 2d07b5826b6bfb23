from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class IdpMetadataIn(BaseModel):
    """The IdP's SAML metadata XML (an ``EntityDescriptor`` with an ``IDPSSODescriptor``)."""

    metadata_xml: str = Field(min_length=1)


class SamlConfigOut(BaseModel):
    """The account's SAML setup: what was read from the IdP's metadata, and where the IdP
    reaches this account's service provider."""

    account_id: str
    idp_entity_id: str
    idp_sso_url: str
    idp_signing_cert_sha256: list[str]
    sp_entity_id: str
    sp_metadata_url: str
    acs_url: str
    login_url: str
    updated_at: dt.datetime
