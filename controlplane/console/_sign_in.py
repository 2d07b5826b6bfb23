"""Sign-in pages: the identity providers to sign in with, one-time links, sign-out."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Form, Request, Response
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
# Pages a sign-in lands on anyway (a user's, the operator's): asking for one needs no return_to.
LANDING_PAGES = frozenset({"/", DEFAULT_RETURN, "/operator/accounts"})
# Carries the page a signed-out visitor asked for from the sign-in page to the one-time link's
# landing page (a link is printed by `stratus console`, so it cannot carry it itself); only
# ever a console path, checked again when read.
LINK_RETURN_COOKIE = "stratus_console_link_return"
LINK_RETURN_SECONDS = 15 * 60


def _requested_page(request: Request) -> str | None:
    """The console page a signed-out request was for, to return to after signing in: the
    page itself on a GET, the page an htmx request was made from, nothing for a form's POST
    (its data is gone; the default landing page it is)."""
    if request.headers.get("HX-Request") == "true":
        current = urlsplit(request.headers.get("HX-Current-URL", ""))
        wanted = current.path + (f"?{current.query}" if current.query else "")
    elif request.method in ("GET", "HEAD"):
        wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    else:
        return None
    path = console_path(wanted)
    if path is None or urlsplit(path).path in LANDING_PAGES or path.startswith("/sign-in"):
        return None
    return path


def sign_in_redirect(request: Request) -> Response:
    """Where a signed-out visitor of a console page is sent: the sign-in page, told which page
    to return to (an htmx request is told to load it as a whole page, not as a fragment)."""
    wanted = _requested_page(request)
    location = "/sign-in" + (f"?{urlencode({'return_to': wanted})}" if wanted else "")
    if request.headers.get("HX-Request") == "true":
        return Response(status_code=401, headers={"HX-Redirect": location})
    return RedirectResponse(location, status_code=303)


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
    request: Request, settings: SettingsDep, note: str | None = None, return_to: str | None = None
) -> Response:
    """The identity providers configured (OIDC), SAML by account, and how to get a one-time
        link. A sign-in (identity provider or one-time link) returns to ``return_to`` (a console
    path only)."""
    wanted = console_path(return_to)
    response = _sign_in_page(
        request, message=_MESSAGES.get(note or ""), return_to=wanted or DEFAULT_RETURN
    )
    if wanted is not None:
        # A one-time link spent in this browser within a few minutes returns there too.
        response.set_cookie(
            LINK_RETURN_COOKIE,
            wanted,
            max_age=LINK_RETURN_SECONDS,
            path=console_link.CONSOLE_LINK_PATH,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https" or settings.public_base_url.startswith("https://"),
        )
    return response


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
async def sign_in_link_page(request: Request, token: str, return_to: str | None = None) -> Response:
    """The link's landing page: a button that spends it. A GET spends nothing, so a link
    previewer or a prefetching browser cannot use the link up. The sign-in returns to
    ``return_to`` (a console path only), else to the page the sign-in page was asked for."""
    wanted = console_path(return_to) or console_path(request.cookies.get(LINK_RETURN_COOKIE))
    return render(request, "sign_in_link.html", token=token, return_to=wanted, viewer=None)


@router.post("/sign-in/link/{token}")
async def use_sign_in_link(
    request: Request,
    token: str,
    session: SessionDep,
    settings: SettingsDep,
    return_to: Annotated[str, Form()] = "",
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
    landing = "/operator/accounts" if is_operator else DEFAULT_RETURN
    response = RedirectResponse(console_path(return_to) or landing, status_code=303)
    set_session_cookie(response, request, settings, created.token)
    response.delete_cookie(LINK_RETURN_COOKIE, path=console_link.CONSOLE_LINK_PATH)
    return response


@router.post("/sign-out")
async def sign_out(
    request: Request, viewer: CurrentViewer, session: SessionDep, settings: SettingsDep
) -> Response:
    await sign_in.logout(session, viewer.signed_in)
    response = RedirectResponse("/sign-in?note=signed-out", status_code=303)
    clear_session_cookie(response, request, settings)
    return response
