"""FastAPI dependencies that need the domains: the caller's principal (an API key or a web
session), the ``requires(action)`` every protected route declares, and the operation starter.
Declared once as ``Annotated`` aliases; the generic ones (``SessionDep``...) are in
``controlplane.kit.deps``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal
from controlplane.api_keys import service as api_keys
from controlplane.config import ApiSettings
from controlplane.kit.authorization import require
from controlplane.kit.context import account_id_var
from controlplane.kit.deps import ReadSessionDep, SessionDep
from controlplane.kit.errors import AccountSuspended, CsrfRejected, Unauthenticated
from controlplane.models import Account
from controlplane.operations.starter import OperationStarter
from controlplane.sign_in import service as sign_in
from controlplane.states import AccountState


async def _starter(request: Request) -> OperationStarter:
    starter: OperationStarter = request.app.state.operation_starter
    return starter


StarterDep = Annotated[OperationStarter, Depends(_starter)]


SESSION_COOKIE = "stratus_session"
CSRF_HEADER = "X-CSRF-Token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def _principal(request: Request, session: SessionDep) -> Principal:
    return await _authenticate(request, session)


async def _authenticate(request: Request, session: AsyncSession) -> Principal:
    """An API key (``Authorization: Bearer``) or, without one, a web session cookie. A
    state-changing request made with the cookie must echo the session's CSRF token: the
    browser attaches cookies on its own, never this header."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header is None and cookie:
        signed_in = await sign_in.authenticate_session(session, cookie)
        principal = signed_in.principal
        if request.method not in _SAFE_METHODS and not sign_in.csrf_matches(
            signed_in.web_session, request.headers.get(CSRF_HEADER)
        ):
            await sign_in.record_csrf_refusal(
                request.app.state.sessionmaker,
                principal,
                method=request.method,
                path=request.url.path,
            )
            raise CsrfRejected(
                f"requests authenticated by the session cookie must send {CSRF_HEADER} "
                "(GET /api/v1/auth/session returns it)"
            )
        _remember(request, principal)
        return principal
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send an API key as `Authorization: Bearer <key>` or sign in")
    principal = await api_keys.authenticate(
        session, token.strip(), cache=request.app.state.credential_cache
    )
    _remember(request, principal)
    return principal


def _remember(request: Request, principal: Principal) -> None:
    """The request's principal, for its span (request.state) and its log lines."""
    request.state.principal = principal
    if principal.account_id:
        account_id_var.set(principal.account_id)


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


async def refuse_writes_while_suspended(
    request: Request, session: AsyncSession, principal: Principal
) -> None:
    """A suspended account's API is read-only for its tenants (and so is one being deleted):
    decided here, once for every route, so no mutating route can forget it."""
    if request.method in _SAFE_METHODS or principal.account_id is None:
        return
    account = await session.get(Account, principal.account_id)
    if account is None or account.state is AccountState.ACTIVE:
        return
    if account.state is AccountState.SUSPENDED:
        reason = f" ({account.suspension_reason})" if account.suspension_reason else ""
        raise AccountSuspended(
            f"account {account.id} is suspended{reason}: its API is read-only until the "
            "operator resumes it"
        )
    raise AccountSuspended(f"account {account.id} is {account.state.value}: its API is read-only")


def requires(action: Action, *, read_only: bool = False) -> Callable[..., Awaitable[Principal]]:
    """The dependency every protected route declares: authenticates, then checks ``action``
    for the caller's own account (per-resource checks happen through tenant scoping).
    ``read_only``: for a handler known not to write, which takes ``ReadSessionDep``;
    authentication then reads in that same read-only unit of work."""

    async def authenticated(
        request: Request, session: SessionDep, principal: CurrentPrincipal
    ) -> Principal:
        require(principal, action)
        await refuse_writes_while_suspended(request, session, principal)
        return principal

    # Authenticates itself (no dependency of its own in between): one level of FastAPI's
    # dependency solving less on the hottest reads.
    async def authenticated_reading(request: Request, session: ReadSessionDep) -> Principal:
        principal = await _authenticate(request, session)
        require(principal, action)
        await refuse_writes_while_suspended(request, session, principal)
        return principal

    dependency: Callable[..., Awaitable[Principal]] = (
        authenticated_reading if read_only else authenticated
    )
    dependency.stratus_action = action  # type: ignore[attr-defined]
    return dependency


@dataclass(frozen=True, slots=True)
class Reading:
    """What a handler known not to write works with: a read-only unit of work
    (``ReadSessionDep``'s), the caller and the settings."""

    session: AsyncSession
    principal: Principal
    settings: ApiSettings


def reading(action: Action) -> Callable[[Request], Awaitable[Reading]]:
    """``requires(action, read_only=True)``, ``ReadSessionDep`` and ``SettingsDep`` as one
    dependency, for the hottest reads: FastAPI solves each dependency of a route on every
    request (four levels cost more than the read of a cached credential)."""

    async def authenticated_reading(request: Request) -> Reading:
        state = request.app.state
        session: AsyncSession = state.read_sessionmaker()
        principal = await _authenticate(request, session)
        require(principal, action)
        await refuse_writes_while_suspended(request, session, principal)
        return Reading(session, principal, state.settings)

    authenticated_reading.stratus_action = action  # type: ignore[attr-defined]
    return authenticated_reading
