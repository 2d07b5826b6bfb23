"""SAML sign-in: the account's IdP configuration, SP-initiated login and the ACS."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.audit import service as audit
from controlplane.config import ApiSettings
from controlplane.group_claims import service as group_claims
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import InvalidField
from controlplane.models import SamlAssertionSeen, SamlAuthnRequest, SamlIdpConfig
from controlplane.saml import service_provider
from controlplane.saml.errors import (
    SamlInvalidResponse,
    SamlNotConfigured,
    SamlReplayedAssertion,
    SamlUnknownRequest,
)
from controlplane.saml.repository import SamlIdpConfigRepository, SamlSignInRepository
from controlplane.saml.service_provider import MetadataRejected, ResponseRejected, SpUrls
from controlplane.sign_in.errors import NotInvited
from controlplane.sign_in.service import NewWebSession, create_web_session

REQUEST_LIFETIME = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class ConfiguredIdp:
    config: SamlIdpConfig
    metadata: service_provider.IdpMetadata


async def configure_idp(
    session: AsyncSession, principal: Principal, *, metadata_xml: str
) -> ConfiguredIdp:
    """Validate and store (or replace) the account's IdP metadata; audited."""
    require(
        principal, Action.SAML_CONFIGURE, refusal="this credential may not configure SAML sign-in"
    )
    try:
        metadata = await asyncio.to_thread(service_provider.parse_idp_metadata, metadata_xml)
    except MetadataRejected as rejected:
        raise InvalidField(rejected.message, field="metadata_xml") from None
    repository = SamlIdpConfigRepository(session, principal)
    config = await repository.get()
    if config is None:
        config = SamlIdpConfig(account_id=repository.account_id)
        repository.add(config)
    config.idp_entity_id = metadata.entity_id
    config.sso_url = metadata.sso_url
    config.metadata_xml = metadata_xml
    audit.record(
        session,
        principal,
        action="saml.idp_metadata.update",
        target=f"saml:{principal.account_id}",
        account_id=principal.account_id,
        details={
            "idp_entity_id": metadata.entity_id,
            "sso_url": metadata.sso_url,
            "signing_cert_sha256": metadata.signing_cert_sha256,
        },
    )
    await session.flush()
    return ConfiguredIdp(config=config, metadata=metadata)


async def configured_idp(session: AsyncSession, principal: Principal) -> SamlIdpConfig | None:
    """The caller's account's IdP configuration, if any (what the console's settings show)."""
    require(principal, Action.IDENTITY_READ, refusal="this credential may not read sign-in setup")
    if principal.account_id is None:
        return None
    return await SamlIdpConfigRepository(session, principal).get()


async def sp_metadata(session: AsyncSession, account_id: str, urls: SpUrls) -> str:
    """The account's SP metadata (served before the IdP is configured: the IdP needs it)."""
    if not await SamlSignInRepository(session).account_exists(account_id):
        raise SamlNotConfigured("no such account")
    return await asyncio.to_thread(service_provider.sp_metadata, urls)


async def _config_or_404(repository: SamlSignInRepository, account_id: str) -> SamlIdpConfig:
    config = await repository.config(account_id)
    if config is None:
        raise SamlNotConfigured("this account has not configured a SAML identity provider")
    return config


async def start_login(
    session: AsyncSession, account_id: str, urls: SpUrls, *, relay_state: str | None = None
) -> str:
    """Issue an AuthnRequest (its id kept server-side until it expires or is answered) and
    return the IdP URL carrying it (HTTP-Redirect binding) and ``relay_state``, which the IdP
    posts back with its response."""
    repository = SamlSignInRepository(session)
    config = await _config_or_404(repository, account_id)
    request_id, location = await asyncio.to_thread(
        service_provider.authn_request,
        urls,
        config.metadata_xml,
        config.idp_entity_id,
        relay_state or "",
    )
    now = utcnow()
    await repository.delete_expired(now)
    repository.add(
        SamlAuthnRequest(id=request_id, account_id=account_id, expires_at=now + REQUEST_LIFETIME)
    )
    await session.flush()
    return location


@dataclass
class AcsContext:
    """What the ACS learned so far, for the refusal's audit event."""

    email: str | None = None


async def complete_login(
    session: AsyncSession,
    settings: ApiSettings,
    account_id: str,
    urls: SpUrls,
    *,
    saml_response: str | None,
    context: AcsContext,
) -> NewWebSession:
    """Verify the posted response, then sign the invited user of this account in.

    Order matters: the request named by ``InResponseTo`` must be ours and unexpired; it is
    consumed by the first response naming it, even a refused one (the refusal commits). The
    replay cache is checked before single use, so a replayed assertion is reported as such.
    """
    repository = SamlSignInRepository(session)
    config = await _config_or_404(repository, account_id)
    if not saml_response:
        raise SamlInvalidResponse("the form carries no SAMLResponse", field="syntax")
    try:
        request_id = service_provider.in_response_to(saml_response)
    except ResponseRejected as rejected:
        raise SamlInvalidResponse(rejected.message, field=rejected.check) from None
    now = utcnow()
    request = await repository.request(account_id, request_id) if request_id else None
    if request is None or request.expires_at <= now:
        raise SamlUnknownRequest(
            "InResponseTo names no sign-in this service provider started (or it expired)",
            field="in_response_to",
        )
    already_consumed = not await repository.consume_request(request.id, now)
    try:
        verified = await asyncio.to_thread(
            service_provider.verify_response,
            urls,
            config.metadata_xml,
            saml_response,
            request.id,
        )
    except ResponseRejected as rejected:
        raise SamlInvalidResponse(rejected.message, field=rejected.check) from None
    context.email = verified.email
    if await repository.assertion_seen(account_id, verified.assertion_id):
        raise SamlReplayedAssertion("this assertion was already used to sign in")
    if already_consumed:
        raise SamlUnknownRequest(
            "the sign-in this response answers was already completed", field="in_response_to"
        )
    try:
        # A savepoint: a concurrent sign-in with the same assertion loses on the primary key
        # and is refused as a replay, with the session still usable for the audit event.
        async with session.begin_nested():
            repository.add(
                SamlAssertionSeen(
                    account_id=account_id,
                    assertion_id=verified.assertion_id,
                    expires_at=max(verified.not_on_or_after, now)
                    + dt.timedelta(seconds=service_provider.CLOCK_SKEW_SECONDS),
                )
            )
    except IntegrityError:
        raise SamlReplayedAssertion("this assertion was already used to sign in") from None
    user = await repository.user_with_email(account_id, verified.email)
    if user is None:
        raise NotInvited("no user with this email has been invited to this account")
    await group_claims.sync_memberships(
        session, user, protocol="saml", provider="saml", claims=verified.attributes
    )
    return await create_web_session(session, settings, user, method="saml", provider="saml")
