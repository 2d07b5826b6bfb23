from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.kit.tenancy import TenantRepository
from controlplane.models import (
    Account,
    SamlAssertionSeen,
    SamlAuthnRequest,
    SamlIdpConfig,
    User,
)


class SamlIdpConfigRepository(TenantRepository):
    """The caller's account's IdP configuration."""

    async def get(self) -> SamlIdpConfig | None:
        statement = self._scoped(select(SamlIdpConfig), SamlIdpConfig.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add(self, config: SamlIdpConfig) -> None:
        self._add(config)


class SamlSignInRepository:
    """The sign-in routes run before there is a principal: they name the account in the URL,
    and every row they read is looked up by that account id (requests and assertions of
    another account are not found)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: SamlAuthnRequest | SamlAssertionSeen) -> None:
        self.session.add(row)

    async def account_exists(self, account_id: str) -> bool:
        return await self.session.get(Account, account_id) is not None

    async def config(self, account_id: str) -> SamlIdpConfig | None:
        return await self.session.get(SamlIdpConfig, account_id)

    async def request(self, account_id: str, request_id: str) -> SamlAuthnRequest | None:
        row = await self.session.get(SamlAuthnRequest, request_id)
        return row if row is not None and row.account_id == account_id else None

    async def consume_request(self, request_id: str, now: dt.datetime) -> bool:
        """Mark the request answered; False if it already was (a conditional update, so two
        concurrent responses cannot both consume it)."""
        statement = (
            update(SamlAuthnRequest)
            .where(SamlAuthnRequest.id == request_id, SamlAuthnRequest.consumed_at.is_(None))
            .values(consumed_at=now)
            .execution_options(synchronize_session=False)
        )
        result = cast(CursorResult[Any], await self.session.execute(statement))
        return result.rowcount == 1

    async def assertion_seen(self, account_id: str, assertion_id: str) -> bool:
        row = await self.session.get(SamlAssertionSeen, (account_id, assertion_id))
        return row is not None

    async def user_with_email(self, account_id: str, email: str) -> User | None:
        statement = select(User).where(
            User.account_id == account_id, func.lower(User.email) == email.lower()
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def delete_expired(self, now: dt.datetime) -> None:
        await self.session.execute(
            delete(SamlAuthnRequest).where(SamlAuthnRequest.expires_at < now)
        )
        await self.session.execute(
            delete(SamlAssertionSeen).where(SamlAssertionSeen.expires_at < now)
        )
