"""Sign-in pages: the identity providers to sign in with, one-time links, sign-out."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from controlplane.console._session import CurrentViewer
from controlplane.console._templates import render
from controlplane.kit.deps import SessionDep, SettingsDep
from controlplane.sign_in import console_link
from controlplane.sign_in import service as sign_in
from controlplane.sign_in.console_return import console_path
from controlplane.sign_in.endpoints import clear_session_cookie, set_session_cookie
from controlplane.sign_in.errors import SignInRefused
from controlplane.sign_in.relying_party import RelyingParty

router = APIRouter(include_in_schema=False)

_MESSAGES = {
    "signed-out": "You are signed out.",
    "refused": "Your identity provider's sign-in was refused (you may not be invited to an "
    "account, or the sign-in expired). Try again, or ask your account's administrator.",
}
# Where a sign-in through an identity provider lands when the page names no other place.
DEFAULT_RETURN = "/namespaces"


def _sign_in_page(
    request: Request,
    *,
    message: str | None,
    status_code: int = 200,
    return_to: str = DEFAULT_RETURN,
) -> Response:
    relying_party: RelyingParty = request.app.state.relying_party
    return render(
        request,
        "sign_in.html",
        status_code=status_code,
        providers=[provider.name for provider in relying_party.providers],
        message=message,
        return_to=return_to,
        viewer=None,
    )


@router.get("/sign-in")
async def sign_in_page(
    request: Request, note: str | None = None, return_to: str | None = None
) -> Response:
    """The identity providers configured (OIDC), SAML by account, and how to get a one-time
    link. An identity provider's sign-in returns to ``return_to`` (a console path only)."""
    return _sign_in_page(
        request,
        message=_MESSAGES.get(note or ""),
        return_to=console_path(return_to) or DEFAULT_RETURN,
    )


@router.get("/sign-in/saml")
async def saml_sign_in(account: str = "", return_to: str | None = None) -> Response:
    """The SAML sign-in form's target: the account's SP-initiated login, returning to the
    console (the API's route answers an unknown account or one without SAML)."""
    query = urlencode({"return_to": console_path(return_to) or DEFAULT_RETURN})
    return RedirectResponse(
        f"/api/v1/auth/saml/{quote(account.strip().lower(), safe='')}/login?{query}",
        status_code=303,
    )


@router.get("/sign-in/link/{token}")
async def sign_in_link_page(request: Request, token: str) -> Response:
    """The link's landing page: a button that spends it. A GET spends nothing, so a link
    previewer or a prefetching browser cannot use the link up."""
    return render(request, "sign_in_link.html", token=token, viewer=None)


@router.post("/sign-in/link/{token}")
async def use_sign_in_link(
    request: Request, token: str, session: SessionDep, settings: SettingsDep
) -> Response:
    """Spend a one-time link: a normal web session (cookie; CSRF token per session)."""
    try:
        created = await console_link.redeem_link(session, settings, token)
    except SignInRefused as refused:
        # Answer instead of raising, so the unit of work commits the audited refusal.
        sign_in.record_refusal(
            session,
            refused,
            action="console.sign_in_link.use",
            provider=None,
            target=console_link.CONSOLE_LINK_PROVIDER,
        )
        return _sign_in_page(request, message=refused.message, status_code=refused.status)
    is_operator = isinstance(created, sign_in.NewOperatorSession)
    response = RedirectResponse(
        "/operator/accounts" if is_operator else "/namespaces", status_code=303
    )
    set_session_cookie(response, request, settings, created.token)
    return response


@router.post("/sign-out")
async def sign_out(
    request: Request, viewer: CurrentViewer, session: SessionDep, settings: SettingsDep
) -> Response:
    await sign_in.logout(session, viewer.signed_in)
    response = RedirectResponse("/sign-in?note=signed-out", status_code=303)
    clear_session_cookie(response, request, settings)
    return response
