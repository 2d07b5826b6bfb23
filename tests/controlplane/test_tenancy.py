"""The tenancy wall below the API: a repository built for account A's principal reads,
updates and deletes only A's rows, and refuses to add or delete a row of another account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import AccountRole, Principal, PrincipalKind
from controlplane.api_keys.repository import ApiKeyRepository
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.kit.errors import Forbidden
from controlplane.models import Account, ApiKey, Base, User
from controlplane.users.repository import UserRepository


def _owner_of(account_id: str) -> Principal:
    return Principal(
        PrincipalKind.USER, f"owner-{account_id}", account_id, AccountRole.OWNER, "owner"
    )


def _user(user_id: str, account_id: str) -> User:
    return User(
        id=user_id,
        account_id=account_id,
        email=f"{user_id}@example.com",
        account_role=AccountRole.READ.value,
        resource_version="1",
    )


def _key(key_id: str, account_id: str, owner_id: str) -> ApiKey:
    return ApiKey(
        id=key_id,
        token_hash="0" * 64,
        owner_type=PrincipalKind.USER.value,
        owner_id=owner_id,
        account_id=account_id,
        display_name=key_id,
        expires_at=None,
    )


@pytest.fixture
async def session(tmp_path: Path) -> AsyncIterator[AsyncSession]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'tenancy.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessionmaker = create_sessionmaker(engine)
    async with unit_of_work(sessionmaker) as setup:
        for account_id in ("alpha", "bravo"):
            setup.add(Account(id=account_id, name=account_id))
            setup.add(_user(f"u-{account_id}", account_id))
        await setup.flush()
        # The same owner id in both accounts: a delete keyed on it must stay in its account.
        setup.add(_key("k-alpha", "alpha", "same-owner"))
        setup.add(_key("k-bravo", "bravo", "same-owner"))
    try:
        async with unit_of_work(sessionmaker) as tenant_session:
            yield tenant_session
    finally:
        await engine.dispose()


async def test_reads_see_only_the_callers_account(session: AsyncSession) -> None:
    users = UserRepository(session, _owner_of("alpha"))
    assert [user.id for user in await users.list_all()] == ["u-alpha"]
    assert await users.get("u-bravo") is None


async def test_a_bulk_delete_stays_in_the_callers_account(session: AsyncSession) -> None:
    await ApiKeyRepository(session, _owner_of("alpha")).delete_all_of(
        owner_type=PrincipalKind.USER.value, owner_id="same-owner"
    )
    remaining = (await session.execute(select(ApiKey.id))).scalars().all()
    assert remaining == ["k-bravo"]


async def test_rows_of_another_account_cannot_be_added_or_deleted(session: AsyncSession) -> None:
    users = UserRepository(session, _owner_of("alpha"))
    with pytest.raises(Forbidden):
        users.add(_user("u-intruder", "bravo"))
    bravo_user = await session.get(User, "u-bravo")
    assert bravo_user is not None
    with pytest.raises(Forbidden):
        await users.delete(bravo_user)


async def test_a_credential_of_no_account_reaches_nothing(session: AsyncSession) -> None:
    operator = Principal(PrincipalKind.OPERATOR, "op", None, None, "operator")
    with pytest.raises(Forbidden):
        await UserRepository(session, operator).list_all()
