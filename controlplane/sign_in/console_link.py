"""One-time console sign-in links: how a newcomer without an identity provider gets a web
session (``stratus console``), and how the operator gets one (``stratus up`` prints a link
created with the operator key). A link signs one user, or the operator, in once, within a few
minutes.

Only the SHA-256 of the link's secret is stored, as a pending sign-in attempt (the row an OIDC
``state`` uses, provider ``console-link``): it is single use (``consumed_at``), expires, and is
swept with the other attempts. Creating and using a link are audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Principal, PrincipalKind
from auth.oidc import new_sign_in_secret
from controlplane.api_keys import service as api_keys
from controlplane.audit import service as audit
from controlplane.config import ApiSettings
from controlplane.kit.db import utcnow
from controlplane.models.oidc_login_attempt import OidcLoginAttempt
from controlplane.sign_in.errors import InvalidSignInLink, SignInLinkNotForUser
from controlplane.sign_in.repository import SignInRepository
from controlplane.sign_in.service import (
    NewOperatorSession,
    NewWebSession,
    create_operator_session,
    create_web_session,
)

CONSOLE_LINK_PROVIDER = "console-link"
CONSOLE_LINK_LIFETIME = dt.timedelta(minutes=5)
# The console page that redeems a link (``controlplane.console``).
CONSOLE_LINK_PATH = "/sign-in/link/"

Clock = Callable[[], dt.datetime]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_url(settings: ApiSettings, token: str) -> str:
    return f"{settings.public_base_url}{CONSOLE_LINK_PATH}{token}"


async def create_link(
    session: AsyncSession, principal: Principal, *, now: Clock = utcnow
) -> tuple[str, dt.datetime]:
    """A one-time link secret that signs ``principal`` in, and when it expires: a user (their
    own web session), or the operator (an operator session tied to the operator key that asked;
    only the operator's own key gets here with an operator principal). A service account has
    no web session: its key is refused."""
    is_operator = principal.kind is PrincipalKind.OPERATOR and principal.api_key_id is not None
    is_user = principal.kind is PrincipalKind.USER and principal.account_id is not None
    if not (is_operator or is_user):
        raise SignInLinkNotForUser(
            "a console sign-in link signs in a user or the operator; use a user's API key "
            f"(this credential is {principal.display})"
        )
    token = new_sign_in_secret()
    at = now()
    expires_at = at + CONSOLE_LINK_LIFETIME
    repository = SignInRepository(session)
    await repository.delete_expired_attempts(at)
    repository.add(
        OidcLoginAttempt(
            state_hash=_hash(token),
            provider=CONSOLE_LINK_PROVIDER,
            nonce="",
            code_verifier="",
            redirect_uri=CONSOLE_LINK_PATH,
            user_id=principal.id if is_user else None,
            operator_key_id=principal.api_key_id if is_operator else None,
            expires_at=expires_at,
        )
    )
    audit.record(
        session,
        principal,
        action="console.sign_in_link.create",
        target=f"user:{principal.id}" if is_user else "operator",
        account_id=principal.account_id,
        details={"expires_at": expires_at.isoformat()},
    )
    await session.flush()
    return token, expires_at


async def redeem_link(
    session: AsyncSession, settings: ApiSettings, token: str, *, now: Clock = utcnow
) -> NewWebSession | NewOperatorSession:
    """Sign the link's user (or the operator) in. Unknown, used and expired links are refused
    alike; the link is spent also when the rest fails."""
    repository = SignInRepository(session)
    attempt = await repository.attempt(_hash(token)) if token else None
    at = now()
    if (
        attempt is None
        or attempt.provider != CONSOLE_LINK_PROVIDER
        or (attempt.user_id is None) == (attempt.operator_key_id is None)
        or attempt.consumed_at is not None
        or attempt.expires_at <= at
    ):
        raise InvalidSignInLink(
            "this sign-in link is unknown, expired or already used; "
            "run `stratus console` for a new one"
        )
    attempt.consumed_at = at
    if attempt.operator_key_id is not None:
        operator = await api_keys.operator_of_key(session, attempt.operator_key_id, now=now)
        if operator is None:
            raise InvalidSignInLink("the operator key of this sign-in link is no longer valid")
        signed_in = await create_operator_session(
            session, settings, operator, provider=CONSOLE_LINK_PROVIDER
        )
        audit.record(
            session,
            operator,
            action="console.sign_in_link.use",
            target=f"web_session:{signed_in.web_session.id}",
            account_id=None,
        )
        await session.flush()
        return signed_in
    assert attempt.user_id is not None
    user = await repository.user(attempt.user_id)
    if user is None:
        raise InvalidSignInLink("the user of this sign-in link no longer exists")
    created = await create_web_session(
        session, settings, user, method="console-link", provider=CONSOLE_LINK_PROVIDER
    )
    audit.record(
        session,
        None,
        action="console.sign_in_link.use",
        target=f"web_session:{created.web_session.id}",
        account_id=user.account_id,
        details={"user_id": user.id},
    ).actor = f"user:{user.email}"
    await session.flush()
    return created
