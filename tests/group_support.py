"""User groups for the group-claims tests, written with the control plane's own models against
the running Stratus's database (as identity_support issues keys): the group routes are built in
parallel (issue 16 item 1); once merged, these helpers can call ``POST /groups`` instead."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import select
from support import StratusUp

from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.models import UserGroup, UserGroupMember


async def _create_group(
    stratus: StratusUp, account_id: str, name: str, account_role: str | None
) -> str:
    engine = create_engine(stratus.database_url)
    group_id = str(uuid.uuid4())
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            session.add(
                UserGroup(id=group_id, account_id=account_id, name=name, account_role=account_role)
            )
    finally:
        await engine.dispose()
    return group_id


def create_group(
    stratus: StratusUp, account_id: str, name: str, *, account_role: str | None = None
) -> str:
    """A user group of ``account_id``; returns its id."""
    return asyncio.run(_create_group(stratus, account_id, name, account_role))


async def _add_member(
    stratus: StratusUp, account_id: str, group_id: str, user_id: str, source: str
) -> None:
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            session.add(
                UserGroupMember(
                    group_id=group_id, user_id=user_id, account_id=account_id, source=source
                )
            )
    finally:
        await engine.dispose()


def add_member(
    stratus: StratusUp, account_id: str, group_id: str, user_id: str, *, source: str = "manual"
) -> None:
    asyncio.run(_add_member(stratus, account_id, group_id, user_id, source))


async def _memberships(stratus: StratusUp, user_id: str) -> dict[str, str]:
    engine = create_engine(stratus.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(UserGroupMember.group_id, UserGroupMember.source).where(
                    UserGroupMember.user_id == user_id
                )
            )
            return {group_id: source for group_id, source in rows}
    finally:
        await engine.dispose()


def memberships(stratus: StratusUp, user_id: str) -> dict[str, str]:
    """The user's groups → the source of each membership."""
    return asyncio.run(_memberships(stratus, user_id))
