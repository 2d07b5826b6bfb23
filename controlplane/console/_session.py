"""Who is looking at a console page: the API's web session (the ``stratus_session`` cookie),
and the CSRF check every console POST passes (the session's token, sent back as the
``csrf_token`` form field or the ``X-CSRF-Token`` header htmx adds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from auth import Action, Principal, PrincipalKind, Resource, authorize
from controlplane.api.deps import CSRF_HEADER, SESSION_COOKIE, refuse_writes_while_suspended
from controlplane.kit.context import account_id_var
from controlplane.kit.deps import SessionDep
from controlplane.kit.errors import CsrfRejected, Unauthenticated
from controlplane.sign_in import service as sign_in

CSRF_FIELD = "csrf_token"


class SignInRequired(Unauthenticated):
    """No valid session: the console answers with the sign-in page (a redirect)."""


@dataclass(frozen=True)
class Viewer:
    """The signed-in user (or the operator) of a console request."""

    principal: Principal
    email: str
    csrf_token: str
    signed_in: sign_in.AuthenticatedSession

    def may(self, action: Action, resource: Resource | None = None) -> bool:
        """What the one policy answers: templates show a control only where this is true
        (the service refuses anyway)."""
        return authorize(self.principal, action, resource)

    @property
    def is_operator(self) -> bool:
        """The installation's operator: the console shows the operator pages instead of an
        account's."""
        return self.principal.kind is PrincipalKind.OPERATOR


async def _viewer(request: Request, session: SessionDep) -> Viewer:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired("sign in to use the console")
    try:
        signed_in = await sign_in.authenticate_session(session, token)
    except Unauthenticated:
        raise SignInRequired("your session ended; sign in again") from None
    viewer = Viewer(
        principal=signed_in.principal,
        email=signed_in.user.email if signed_in.user else "operator",
        csrf_token=signed_in.web_session.csrf_token,
        signed_in=signed_in,
    )
    request.state.viewer = viewer
    request.state.principal = signed_in.principal
    if signed_in.principal.account_id:
        account_id_var.set(signed_in.principal.account_id)
    if request.method == "POST":
        form = await request.form()
        presented = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not isinstance(presented, str) or not sign_in.csrf_matches(
            signed_in.web_session, presented
        ):
            await sign_in.record_csrf_refusal(
                request.app.state.sessionmaker,
                signed_in.principal,
                method=request.method,
                path=request.url.path,
            )
            raise CsrfRejected("the form is stale or was not sent by this console; reload it")
        if not request.url.path.endswith("/sign-out"):
            # A suspended account's console is read-only, as its API is.
            await refuse_writes_while_suspended(request, session, signed_in.principal)
    return viewer


CurrentViewer = Annotated[Viewer, Depends(_viewer)]
