from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.models.oidc_login_attempt import OidcLoginAttempt
from controlplane.models.user import User
from controlplane.models.web_session import WebSession


class SignInRepository:
    """Sign-in happens before there is a principal, so nothing here is tenant-scoped: rows are
    found by the hash of a secret the caller presents (state, hand-off code, session token), and
    users by a verified email across accounts."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: OidcLoginAttempt | WebSession) -> None:
        self.session.add(row)

    async def attempt(self, state_hash: str) -> OidcLoginAttempt | None:
        return await self.session.get(OidcLoginAttempt, state_hash)

    async def attempt_by_handoff(self, handoff_hash: str) -> OidcLoginAttempt | None:
        statement = select(OidcLoginAttempt).where(OidcLoginAttempt.handoff_hash == handoff_hash)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def delete_expired_attempts(self, now: dt.datetime) -> None:
        await self.session.execute(
            delete(OidcLoginAttempt).where(OidcLoginAttempt.expires_at < now)
        )

    async def delete_attempt(self, attempt: OidcLoginAttempt) -> None:
        await self.session.delete(attempt)

    async def users_with_email(self, email: str) -> list[User]:
        statement = (
            select(User).where(func.lower(User.email) == email.lower()).order_by(User.account_id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def user(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def web_session(self, token_hash: str) -> WebSession | None:
        statement = select(WebSession).where(WebSession.token_hash == token_hash)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def delete_web_session(self, web_session: WebSession) -> None:
        await self.session.delete(web_session)

    async def delete_expired_sessions(self, now: dt.datetime) -> None:
        await self.session.execute(delete(WebSession).where(WebSession.expires_at < now))
