"""Public sign-in routes (listed in ``controlplane.app.PUBLIC_PATHS``): they authenticate
the caller themselves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from auth import Action, Principal
from controlplane.api.deps import CSRF_HEADER, SESSION_COOKIE, requires
from controlplane.config import ApiSettings
from controlplane.kit.deps import SessionDep, SettingsDep
from controlplane.kit.errors import CsrfRejected, InvalidField, Unauthenticated, problem_response
from controlplane.kit.routing import ApiRoute
from controlplane.models.user import User
from controlplane.models.web_session import WebSession
from controlplane.sign_in import console_link, service
from controlplane.sign_in.console_return import (
    RETURN_COOKIE,
    checked_console_path,
    console_path,
)
from controlplane.sign_in.errors import SignInRefused
from controlplane.sign_in.relying_party import RelyingParty
from controlplane.sign_in.schemas import (
    CliHandoffIn,
    CliSessionOut,
    ConsoleLinkOut,
    IdentityProviderList,
    IdentityProviderOut,
    SessionOut,
)

router = APIRouter(route_class=ApiRoute, prefix="/auth", tags=["sign-in"])

STATE_COOKIE = "stratus_oidc_state"
STATE_COOKIE_PATH = "/api/v1/auth/oidc/"


def _relying_party(request: Request) -> RelyingParty:
    relying_party: RelyingParty = request.app.state.relying_party
    return relying_party


def _secure(request: Request, public_url: str | None) -> bool:
    return request.url.scheme == "https" or (public_url or "").startswith("https://")


def _callback_uri(settings: ApiSettings, provider: str) -> str:
    # The configured public URL, never the request's Host header.
    return f"{settings.public_base_url}/api/v1/auth/oidc/{provider}/callback"


def _session_out(web_session: WebSession, user: User | None) -> SessionOut:
    return SessionOut(
        session_id=web_session.id,
        principal_kind=web_session.principal_kind,
        user_id=user.id if user else None,
        email=user.email if user else None,
        account_id=user.account_id if user else None,
        account_role=user.account_role if user else None,
        identity_provider=web_session.identity_provider,
        csrf_token=web_session.csrf_token,
        expires_at=web_session.expires_at,
    )


def signed_in_response(
    request: Request, settings: ApiSettings, created: service.NewWebSession
) -> JSONResponse:
    """The answer to a browser sign-in (OIDC callback, SAML ACS): the session with its CSRF
    token, and the HttpOnly, SameSite=Lax ``stratus_session`` cookie (Secure over https)."""
    body = _session_out(created.web_session, created.user)
    response = JSONResponse(body.model_dump(mode="json"))
    set_session_cookie(response, request, settings, created.token)
    return response


# Where a console sign-in that the IdP or the service refused lands (the refusal is audited).
CONSOLE_REFUSED = "/sign-in?note=refused"


def console_signed_in_response(
    request: Request, settings: ApiSettings, created: service.NewWebSession, return_to: str
) -> Response:
    """The answer to a browser sign-in started from the console: the session cookie and a
    303 to the console page it started from (``return_to``, already a console path)."""
    response = RedirectResponse(return_to, status_code=303)
    set_session_cookie(response, request, settings, created.token)
    return response


def set_session_cookie(
    response: Response, request: Request, settings: ApiSettings, token: str
) -> None:
    """The HttpOnly, SameSite=Lax ``stratus_session`` cookie (Secure over https)."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_lifetime_seconds,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request, settings.public_url),
    )


def clear_session_cookie(response: Response, request: Request, settings: ApiSettings) -> None:
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request, settings.public_url),
    )


@router.get("/oidc/providers", response_model=IdentityProviderList)
async def list_providers(request: Request) -> IdentityProviderList:
    """The identity providers users can sign in with."""
    return IdentityProviderList(
        providers=[IdentityProviderOut(name=p.name) for p in _relying_party(request).providers]
    )


@router.get("/oidc/{provider}/login", status_code=302, responses={302: {}, 400: {}, 404: {}})
async def oidc_login(
    provider: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    account: Annotated[str | None, Query(description="Account to sign into")] = None,
    cli_redirect: Annotated[str | None, Query(description="CLI loopback URL")] = None,
    cli_challenge: Annotated[str | None, Query(description="S256 of the CLI's verifier")] = None,
    return_to: Annotated[
        str | None, Query(description="Console path to return to, signed in (the console)")
    ] = None,
) -> RedirectResponse:
    """Start an authorization-code + PKCE sign-in: redirects to the IdP. ``state`` is bound to
    this browser by a short-lived cookie. With ``return_to`` (a console path; anything else
    is refused) the callback answers with a redirect there instead of the session's JSON."""
    console_return = checked_console_path(return_to)
    if console_return is not None and cli_redirect is not None:
        raise InvalidField(
            "a sign-in returns to the console or to the CLI, not both", field="return_to"
        )
    url, state = await service.start_login(
        session,
        _relying_party(request),
        provider,
        redirect_uri=_callback_uri(settings, provider),
        account_hint=account,
        cli_redirect=cli_redirect,
        cli_challenge=cli_challenge,
    )
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        STATE_COOKIE,
        state,
        max_age=int(service.LOGIN_ATTEMPT_LIFETIME.total_seconds()),
        path=STATE_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=_secure(request, settings.public_url),
    )
    if console_return is not None:
        response.set_cookie(
            RETURN_COOKIE,
            console_return,
            max_age=int(service.LOGIN_ATTEMPT_LIFETIME.total_seconds()),
            path=STATE_COOKIE_PATH,
            httponly=True,
            samesite="lax",
            secure=_secure(request, settings.public_url),
        )
    return response


@router.get(
    "/oidc/{provider}/callback",
    response_model=SessionOut,
    responses={302: {}, 400: {}, 401: {}, 403: {}, 404: {}, 409: {}, 502: {}},
)
async def oidc_callback(
    provider: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
    iss: str | None = None,
) -> Response:
    """The IdP's redirect back. Success sets the ``stratus_session`` cookie and returns the
    session (with its CSRF token); a CLI sign-in is handed to the CLI's loopback instead, and
    a console sign-in is redirected (303) to the console page it started from. Refusals are
    problem+json (a console sign-in: the sign-in page) and audited."""
    # Checked again: the cookie comes back from the browser.
    console_return = console_path(request.cookies.get(RETURN_COOKIE))
    context = service.CallbackContext()
    try:
        result = await service.complete_login(
            session,
            _relying_party(request),
            settings,
            provider,
            state=state,
            browser_state=request.cookies.get(STATE_COOKIE),
            code=code,
            error=error,
            error_description=error_description,
            issuer=iss,
            context=context,
        )
    except SignInRefused as refused:
        # Answer instead of raising, so the unit of work commits: the state stays used and
        # the refusal is audited.
        service.record_refusal(
            session,
            refused,
            action="auth.login",
            provider=provider,
            email=context.email,
            account_id=context.account_id,
        )
        response: Response = (
            RedirectResponse(CONSOLE_REFUSED, status_code=303)
            if console_return is not None
            else problem_response(refused, request)
        )
    else:
        if isinstance(result, service.CliHandoff):
            response = RedirectResponse(result.redirect_url, status_code=302)
        elif console_return is not None:
            response = console_signed_in_response(request, settings, result, console_return)
        else:
            response = signed_in_response(request, settings, result)
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    response.delete_cookie(RETURN_COOKIE, path=STATE_COOKIE_PATH)
    return response


@router.post("/cli/handoff", response_model=CliSessionOut, responses={400: {}})
async def cli_handoff(
    body: CliHandoffIn, request: Request, session: SessionDep, settings: SettingsDep
) -> Response:
    """``stratus login``: trade the loopback hand-off code and the CLI's verifier for a
    session token (once, within two minutes of the callback)."""
    try:
        created = await service.redeem_handoff(
            session, settings, code=body.code, verifier=body.verifier
        )
    except SignInRefused as refused:
        service.record_refusal(session, refused, action="auth.login", provider=None)
        return problem_response(refused, request)
    out = CliSessionOut(
        **_session_out(created.web_session, created.user).model_dump(),
        session_token=created.token,
    )
    return JSONResponse(out.model_dump(mode="json"))


async def _signed_in(request: Request, session: SessionDep) -> service.AuthenticatedSession:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise Unauthenticated("not signed in")
    return await service.authenticate_session(session, token)


@router.get("/session", response_model=SessionOut, responses={401: {}})
async def get_session(request: Request, session: SessionDep) -> SessionOut:
    """The session of the ``stratus_session`` cookie, with its CSRF token."""
    signed_in = await _signed_in(request, session)
    return _session_out(signed_in.web_session, signed_in.user)


@router.post("/logout", status_code=204, responses={401: {}, 403: {}})
async def logout(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """End the cookie's session (needs ``X-CSRF-Token``); the cookie stops working at once."""
    signed_in = await _signed_in(request, session)
    if not service.csrf_matches(signed_in.web_session, request.headers.get(CSRF_HEADER)):
        await service.record_csrf_refusal(
            request.app.state.sessionmaker,
            signed_in.principal,
            method=request.method,
            path=request.url.path,
        )
        raise CsrfRejected(f"logout needs {CSRF_HEADER}")
    await service.logout(session, signed_in)
    response = Response(status_code=204)
    clear_session_cookie(response, request, settings)
    return response


@router.post(
    "/console-link", status_code=201, response_model=ConsoleLinkOut, responses={400: {}, 401: {}}
)
async def create_console_link(
    session: SessionDep,
    settings: SettingsDep,
    principal: Annotated[Principal, Depends(requires(Action.IDENTITY_READ))],
) -> ConsoleLinkOut:
    """``stratus console``: a link that signs the caller's user into the web console, once,
    within five minutes. With the operator key (``stratus up`` does this), the link signs the
    operator in. 400 ``sign-in-link-needs-user`` for a service account's key."""
    token, expires_at = await console_link.create_link(session, principal)
    return ConsoleLinkOut(url=console_link.link_url(settings, token), expires_at=expires_at)
