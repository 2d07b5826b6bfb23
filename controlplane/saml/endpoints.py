"""SAML sign-in routes. ``/auth/saml/{account_id}/...`` are public (listed in
``controlplane.app.PUBLIC_PATHS``): the IdP's signed response authenticates the caller.
Configuring the account's IdP is an authorized route."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.config import ApiSettings
from controlplane.kit.deps import SessionDep, SettingsDep
from controlplane.kit.errors import problem_response
from controlplane.kit.routing import ApiRoute
from controlplane.saml import service
from controlplane.saml.schemas import IdpMetadataIn, SamlConfigOut
from controlplane.saml.service_provider import SpUrls
from controlplane.sign_in import service as sign_in
from controlplane.sign_in.console_return import checked_console_path, console_path
from controlplane.sign_in.endpoints import (
    CONSOLE_REFUSED,
    console_signed_in_response,
    signed_in_response,
)
from controlplane.sign_in.errors import SignInRefused
from controlplane.sign_in.schemas import SessionOut

router = APIRouter(route_class=ApiRoute, tags=["saml"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 422: {}}
SAML_METADATA_TYPE = "application/samlmetadata+xml"
FORM_TYPE = "application/x-www-form-urlencoded"


def _urls(settings: ApiSettings, account_id: str) -> SpUrls:
    # From the configured public URL, never the request's Host header: a forged Host would
    # otherwise change the entity id and ACS URL the metadata announces.
    return SpUrls.for_account(settings.public_base_url, account_id)


@router.post("/saml/idp-metadata", response_model=SamlConfigOut, responses=Problems)
async def upload_idp_metadata(
    body: IdpMetadataIn,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.SAML_CONFIGURE))],
) -> SamlConfigOut:
    """Set (or replace) the account's SAML IdP from its metadata XML: it must parse and name
    an HTTP-Redirect single sign-on endpoint and a signing certificate."""
    configured = await service.configure_idp(session, principal, metadata_xml=body.metadata_xml)
    config = configured.config
    urls = _urls(settings, config.account_id)
    return SamlConfigOut(
        account_id=config.account_id,
        idp_entity_id=config.idp_entity_id,
        idp_sso_url=config.sso_url,
        idp_signing_cert_sha256=configured.metadata.signing_cert_sha256,
        sp_entity_id=urls.entity_id,
        sp_metadata_url=urls.entity_id,
        acs_url=urls.acs_url,
        login_url=urls.entity_id.removesuffix("/metadata") + "/login",
        updated_at=config.updated_at,
    )


@router.get(
    "/auth/saml/{account_id}/metadata",
    response_class=Response,
    responses={200: {"content": {SAML_METADATA_TYPE: {}}}, 404: {}},
)
async def sp_metadata(
    account_id: str, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """The account's SP metadata, for its IdP (the entity id is this URL)."""
    urls = _urls(settings, account_id)
    xml = await service.sp_metadata(session, account_id, urls)
    return Response(xml, media_type=SAML_METADATA_TYPE)


@router.get("/auth/saml/{account_id}/login", status_code=302, responses={302: {}, 400: {}, 404: {}})
async def saml_login(
    account_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    return_to: Annotated[
        str | None, Query(description="Console path to return to, signed in (the console)")
    ] = None,
) -> RedirectResponse:
    """SP-initiated sign-in: redirects to the account's IdP with an AuthnRequest. With
    ``return_to`` (a console path; anything else is refused) the IdP carries it back as the
    RelayState and the ACS answers with a redirect there instead of the session's JSON."""
    urls = _urls(settings, account_id)
    relay_state = checked_console_path(return_to)
    location = await service.start_login(session, account_id, urls, relay_state=relay_state)
    return RedirectResponse(location, status_code=302)


async def _form_field(request: Request, name: str) -> str | None:
    """One field of an ``application/x-www-form-urlencoded`` body (the HTTP-POST binding)."""
    if not request.headers.get("content-type", "").startswith(FORM_TYPE):
        return None
    values = parse_qs((await request.body()).decode("ascii", errors="replace")).get(name)
    return values[0] if values else None


@router.post(
    "/auth/saml/{account_id}/acs",
    response_model=SessionOut,
    responses={400: {}, 401: {}, 403: {}, 404: {}},
)
async def saml_acs(
    account_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The assertion consumer service (HTTP-POST binding). Success sets the
    ``stratus_session`` cookie and returns the session, as the OIDC callback does, or, for a
    sign-in started from the console (a console path as the RelayState), redirects (303)
    there; refusals are problem+json (a console sign-in: the sign-in page) and audited."""
    urls = _urls(settings, account_id)
    saml_response = await _form_field(request, "SAMLResponse")
    # The RelayState comes back through the browser: anything but a console path is ignored.
    console_return = console_path(await _form_field(request, "RelayState"))
    context = service.AcsContext()
    try:
        created = await service.complete_login(
            session, settings, account_id, urls, saml_response=saml_response, context=context
        )
    except SignInRefused as refused:
        # Answer instead of raising, so the unit of work commits: the request stays consumed
        # and the refusal is audited.
        sign_in.record_refusal(
            session,
            refused,
            action="auth.login",
            provider=None,
            target=f"saml:{account_id}",
            email=context.email,
            # Refusals happen only once the account has a SAML IdP, so it exists.
            account_id=account_id,
        )
        if console_return is not None:
            return RedirectResponse(CONSOLE_REFUSED, status_code=303)
        return problem_response(refused, request)
    if console_return is not None:
        return console_signed_in_response(request, settings, created, console_return)
    return signed_in_response(request, settings, created)
