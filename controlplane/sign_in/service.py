"""OIDC sign-in (authorization code + PKCE), web sessions and the CLI hand-off."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from auth import Principal, PrincipalKind, effective_namespace_permissions
from auth.oidc import (
    IdTokenRejected,
    hash_session_token,
    new_session_token,
    new_sign_in_secret,
)
from controlplane.access.repository import SystemNamespaceAccessRepository
from controlplane.api_keys import service as api_keys
from controlplane.audit import service as audit
from controlplane.config import ApiSettings, OidcProvider
from controlplane.group_claims import service as group_claims
from controlplane.kit.db import unit_of_work, utcnow
from controlplane.kit.errors import InvalidField, NotFound, Unauthenticated
from controlplane.models.oidc_login_attempt import OidcLoginAttempt
from controlplane.models.user import User
from controlplane.models.web_session import SESSION_OF_OPERATOR, SESSION_OF_USER, WebSession
from controlplane.sign_in.errors import (
    AccountAmbiguous,
    IdpNotAllowed,
    InvalidHandoff,
    NotInvited,
    OidcCodeExchangeFailed,
    OidcIdpError,
    OidcInvalidIdToken,
    OidcInvalidState,
    SignInRefused,
    UserDeactivated,
)
from controlplane.sign_in.relying_party import RelyingParty
from controlplane.sign_in.repository import SignInRepository
from controlplane.users import service as users

LOGIN_ATTEMPT_LIFETIME = dt.timedelta(minutes=10)
HANDOFF_LIFETIME = dt.timedelta(minutes=2)
_CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def s256(verifier: str) -> str:
    """RFC 7636 S256 of a verifier (the CLI hand-off uses the same construction as PKCE)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def provider_or_404(relying_party: RelyingParty, name: str) -> OidcProvider:
    provider = relying_party.get(name)
    if provider is None:
        raise NotFound(f"no identity provider named {name!r}")
    return provider


def _check_cli_redirect(cli_redirect: str | None, cli_challenge: str | None) -> None:
    if cli_redirect is None and cli_challenge is None:
        return
    if cli_redirect is None or cli_challenge is None:
        raise InvalidField("cli_redirect and cli_challenge go together", field="cli_redirect")
    parts = urlsplit(cli_redirect)
    # RFC 8252 7.3: native apps receive the result on a loopback interface only.
    if parts.scheme != "http" or f"{parts.hostname}" not in {"127.0.0.1", "localhost", "::1"}:
        raise InvalidField("cli_redirect must be an http loopback URL", field="cli_redirect")
    if not _CHALLENGE_RE.match(cli_challenge):
        raise InvalidField("cli_challenge must be an S256 challenge", field="cli_challenge")


async def start_login(
    session: AsyncSession,
    relying_party: RelyingParty,
    provider_name: str,
    *,
    redirect_uri: str,
    account_hint: str | None,
    cli_redirect: str | None,
    cli_challenge: str | None,
) -> tuple[str, str]:
    """Record a login attempt (state, nonce, PKCE verifier) and return the IdP's authorization
    URL and the state (which the endpoint also binds to the browser)."""
    provider = provider_or_404(relying_party, provider_name)
    _check_cli_redirect(cli_redirect, cli_challenge)
    state, nonce, verifier = new_sign_in_secret(), new_sign_in_secret(), new_sign_in_secret()
    url = await relying_party.authorization_url(
        provider, redirect_uri=redirect_uri, state=state, nonce=nonce, code_verifier=verifier
    )
    repository = SignInRepository(session)
    now = utcnow()
    await repository.delete_expired_attempts(now)
    repository.add(
        OidcLoginAttempt(
            state_hash=_hash(state),
            provider=provider.name,
            nonce=nonce,
            code_verifier=verifier,
            redirect_uri=redirect_uri,
            account_hint=account_hint,
            cli_redirect=cli_redirect,
            cli_challenge=cli_challenge,
            expires_at=now + LOGIN_ATTEMPT_LIFETIME,
        )
    )
    await session.flush()
    return url, state


@dataclass(frozen=True)
class NewWebSession:
    web_session: WebSession
    token: str
    user: User


@dataclass(frozen=True)
class CliHandoff:
    redirect_url: str


def _principal_display(user: User) -> str:
    return f"user:{user.email}"


async def user_principal(session: AsyncSession, user: User) -> Principal:
    """The principal a signed-in user acts as (same shape as for the user's API keys)."""
    access = SystemNamespaceAccessRepository(session)
    own = await access.permissions_of(PrincipalKind.USER, user.id)
    groups = await access.group_access_of(user.id)
    return Principal(
        kind=PrincipalKind.USER,
        id=user.id,
        account_id=user.account_id,
        account_role=user.account_role,
        display=_principal_display(user),
        namespace_permissions=effective_namespace_permissions(own, groups.namespace_permissions),
        group_roles=groups.roles,
    )


def _match_user(
    users: list[User], provider: OidcProvider, providers: list[OidcProvider], hint: str | None
) -> User:
    """The invited user this verified email signs in as. No row: no sign-up."""
    bound_accounts = {p.account_id for p in providers if p.account_id is not None}
    if provider.account_id is not None:
        candidates = [user for user in users if user.account_id == provider.account_id]
    else:
        candidates = [user for user in users if user.account_id not in bound_accounts]
        if not candidates and users:
            raise IdpNotAllowed(
                "your account requires signing in with its own identity provider, "
                f"not {provider.name}"
            )
    if hint is not None:
        candidates = [user for user in candidates if user.account_id == hint]
    if not candidates:
        raise NotInvited("no user with this email has been invited; ask an account admin")
    if len(candidates) > 1:
        raise AccountAmbiguous(
            "this email is invited to several accounts; sign in again with ?account=<id>"
        )
    return candidates[0]


async def create_web_session(
    session: AsyncSession,
    settings: ApiSettings,
    user: User,
    *,
    method: str,
    provider: str,
    now: Callable[[], dt.datetime] = utcnow,
) -> NewWebSession:
    """Sign ``user`` in: a server-side session (only its token's hash is stored) and the
    ``auth.login`` audit event. Every sign-in method (OIDC, the CLI hand-off, SAML) ends
    here, so sessions are the same whichever way the user came; the first one accepts the
    user's invitation (an expired one is refused)."""
    if not user.active:
        raise UserDeactivated(
            f"{user.email} was deactivated by the account's identity provider (SCIM); ask an "
            "account admin to reactivate it there"
        )
    users.accept_invitation(user, now())
    token = new_session_token()
    web_session = WebSession(
        id=str(uuid.uuid4()),
        token_hash=hash_session_token(token),
        principal_kind=SESSION_OF_USER,
        user_id=user.id,
        account_id=user.account_id,
        csrf_token=secrets.token_urlsafe(32),
        identity_provider=provider,
        expires_at=utcnow() + dt.timedelta(seconds=settings.session_lifetime_seconds),
    )
    SignInRepository(session).add(web_session)
    principal = await user_principal(session, user)
    audit.record(
        session,
        principal,
        action="auth.login",
        target=f"web_session:{web_session.id}",
        account_id=user.account_id,
        details={"method": method, "provider": provider},
    )
    await session.flush()
    return NewWebSession(web_session=web_session, token=token, user=user)


@dataclass(frozen=True)
class NewOperatorSession:
    web_session: WebSession
    token: str


async def create_operator_session(
    session: AsyncSession, settings: ApiSettings, operator: Principal, *, provider: str
) -> NewOperatorSession:
    """Sign the operator in: a session tied to the operator key that asked for the link (it
    ends with that key). Only a one-time link the operator's own key created ends here; no
    identity provider, hand-off or tenant credential leads to this function."""
    if operator.kind is not PrincipalKind.OPERATOR or operator.api_key_id is None:
        raise ValueError("an operator session needs the operator's key")
    token = new_session_token()
    web_session = WebSession(
        id=str(uuid.uuid4()),
        token_hash=hash_session_token(token),
        principal_kind=SESSION_OF_OPERATOR,
        user_id=None,
        account_id=None,
        operator_key_id=operator.api_key_id,
        csrf_token=secrets.token_urlsafe(32),
        identity_provider=provider,
        expires_at=utcnow() + dt.timedelta(seconds=settings.session_lifetime_seconds),
    )
    SignInRepository(session).add(web_session)
    audit.record(
        session,
        operator,
        action="auth.login",
        target=f"web_session:{web_session.id}",
        account_id=None,
        details={"method": provider, "provider": provider},
    )
    await session.flush()
    return NewOperatorSession(web_session=web_session, token=token)


def record_refusal(
    session: AsyncSession,
    error: SignInRefused,
    *,
    action: str,
    provider: str | None,
    email: str | None = None,
    account_id: str | None = None,
    target: str | None = None,
) -> None:
    """Audit a refused sign-in (the endpoint answers the problem and still commits).
    ``target`` defaults to the OIDC provider (or the CLI hand-off)."""
    if target is None:
        target = f"oidc:{provider}" if provider else "cli-handoff"
    event = audit.record(
        session,
        None,
        action=action,
        target=target,
        account_id=account_id,
        outcome="refused",
        details={"reason": error.slug, "check": error.field, "detail": error.message},
    )
    event.actor = f"anonymous:{email}" if email else "anonymous"


@dataclass
class CallbackContext:
    """What the callback learned so far, for the refusal's audit event."""

    email: str | None = None
    account_id: str | None = None


async def complete_login(
    session: AsyncSession,
    relying_party: RelyingParty,
    settings: ApiSettings,
    provider_name: str,
    *,
    state: str | None,
    browser_state: str | None,
    code: str | None,
    error: str | None,
    error_description: str | None,
    issuer: str | None,
    context: CallbackContext,
) -> NewWebSession | CliHandoff:
    """Finish the authorization-code flow: single-use state bound to the browser, code
    exchanged with the PKCE verifier, ID token verified, user matched by verified email."""
    provider = provider_or_404(relying_party, provider_name)
    if (
        not state
        or browser_state is None
        or not secrets.compare_digest(state.encode(), browser_state.encode())
    ):
        raise OidcInvalidState("the sign-in state does not match the one this browser started")
    repository = SignInRepository(session)
    attempt = await repository.attempt(_hash(state))
    now = utcnow()
    if (
        attempt is None
        or attempt.provider != provider.name
        or attempt.consumed_at is not None
        or attempt.expires_at <= now
    ):
        raise OidcInvalidState("the sign-in state is unknown, expired or already used")
    attempt.consumed_at = now  # single use, also when the rest fails (the refusal commits)
    await session.flush()

    if error:
        raise OidcIdpError(f"{provider.name} answered {error}: {error_description or ''}".strip())
    # RFC 9207: an IdP that names itself in the response must be the one we sent the user to.
    if issuer is not None and issuer != provider.issuer_url:
        raise OidcIdpError("the authorization response comes from another issuer", field="iss")
    if not code:
        raise OidcCodeExchangeFailed("the authorization response carries no code")

    id_token = await relying_party.exchange_code(
        provider, code=code, redirect_uri=attempt.redirect_uri, code_verifier=attempt.code_verifier
    )
    try:
        claims = await relying_party.verify(provider, id_token, nonce=attempt.nonce)
    except IdTokenRejected as rejected:
        raise OidcInvalidIdToken(rejected.message, field=rejected.check) from None
    context.email = claims.email

    users = await repository.users_with_email(claims.email)
    user = _match_user(users, provider, relying_party.providers, attempt.account_hint)
    context.account_id = user.account_id
    # Before any session or hand-off: the principal built from here on holds the groups the
    # IdP asserts now (the CLI's hand-off redeems later, without the ID token).
    await group_claims.sync_memberships(
        session, user, protocol="oidc", provider=provider.name, claims=claims.raw
    )

    if attempt.cli_redirect is not None:
        handoff = new_sign_in_secret()
        attempt.handoff_hash = _hash(handoff)
        attempt.user_id = user.id
        attempt.expires_at = now + HANDOFF_LIFETIME
        await session.flush()
        separator = "&" if "?" in attempt.cli_redirect else "?"
        return CliHandoff(attempt.cli_redirect + separator + urlencode({"code": handoff}))
    return await create_web_session(session, settings, user, method="oidc", provider=provider.name)


async def redeem_handoff(
    session: AsyncSession, settings: ApiSettings, *, code: str, verifier: str
) -> NewWebSession:
    """The CLI trades the loopback hand-off code and its verifier for a session (once)."""
    repository = SignInRepository(session)
    attempt = await repository.attempt_by_handoff(_hash(code))
    if (
        attempt is None
        or attempt.user_id is None
        or attempt.cli_challenge is None
        or attempt.expires_at <= utcnow()
        or not secrets.compare_digest(s256(verifier).encode(), attempt.cli_challenge.encode())
    ):
        raise InvalidHandoff("the hand-off code is unknown, expired, used or the verifier is wrong")
    user = await repository.user(attempt.user_id)
    await repository.delete_attempt(attempt)
    if user is None:
        raise InvalidHandoff("the user no longer exists")
    return await create_web_session(
        session, settings, user, method="oidc", provider=attempt.provider
    )


@dataclass(frozen=True)
class AuthenticatedSession:
    """A signed-in session: a user's (``user`` set) or the operator's (``user`` None)."""

    principal: Principal
    web_session: WebSession
    user: User | None


async def authenticate_session(session: AsyncSession, token: str) -> AuthenticatedSession:
    """Resolve a session cookie; every failure is the same 401."""
    refused = Unauthenticated("the session is missing, unknown, expired or ended; sign in again")
    repository = SignInRepository(session)
    web_session = await repository.web_session(hash_session_token(token))
    if web_session is None or web_session.expires_at <= utcnow():
        raise refused
    if web_session.principal_kind == SESSION_OF_OPERATOR:
        operator = (
            await api_keys.operator_of_key(session, web_session.operator_key_id)
            if web_session.operator_key_id is not None and web_session.user_id is None
            else None
        )
        if operator is None:
            raise refused
        return AuthenticatedSession(principal=operator, web_session=web_session, user=None)
    if web_session.principal_kind != SESSION_OF_USER or web_session.user_id is None:
        raise refused
    user = await repository.user(web_session.user_id)
    if user is None or user.account_id != web_session.account_id:
        raise refused
    principal = await user_principal(session, user)
    return AuthenticatedSession(principal=principal, web_session=web_session, user=user)


def csrf_matches(web_session: WebSession, presented: str | None) -> bool:
    return presented is not None and secrets.compare_digest(
        presented.encode(), web_session.csrf_token.encode()
    )


async def record_csrf_refusal(
    sessionmaker: async_sessionmaker[AsyncSession],
    principal: Principal,
    *,
    method: str,
    path: str,
) -> None:
    """Audit in a unit of work of its own: the request's own rolls back with the refusal."""
    async with unit_of_work(sessionmaker) as session:
        audit.record(
            session,
            principal,
            action="auth.csrf",
            target=f"{method} {path}",
            account_id=principal.account_id,
            outcome="refused",
        )


async def logout(session: AsyncSession, authenticated: AuthenticatedSession) -> None:
    repository = SignInRepository(session)
    await repository.delete_web_session(authenticated.web_session)
    await repository.delete_expired_sessions(utcnow())
    audit.record(
        session,
        authenticated.principal,
        action="auth.logout",
        target=f"web_session:{authenticated.web_session.id}",
        account_id=authenticated.principal.account_id,
    )
    await session.flush()
