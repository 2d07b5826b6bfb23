"""Helpers for identity tests: invited users with API keys, service accounts with keys.

Users get their first credential by signing in (OIDC); these tests issue an invited user's key
with the control plane's own service (as account creation does for the owner), against the
running Stratus's database.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from product_constants import PROBLEM
from support import StratusUp, http

from controlplane.api_keys import service as api_keys
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work, utcnow
from controlplane.kit.errors import Unauthenticated
from controlplane.models import User


def expiry(days: float = 30) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(days=days)).isoformat()


def _database_url(stratus: StratusUp) -> str:
    """The database of ``stratus``: its STRATUS_DATABASE_URL, else the SQLite in its data dir."""
    return stratus.database_url


async def _issue_user_key(stratus: StratusUp, user_id: str, issued_at: dt.datetime | None) -> str:
    engine = create_engine(_database_url(stratus))
    tokens = []
    try:
        # The loop runs to its end so the unit of work commits.
        async with unit_of_work(create_sessionmaker(engine)) as session:
            user = await session.get(User, user_id)
            assert user is not None
            _, token = await api_keys.issue_user_key(
                session,
                user,
                display_name="test sign-in",
                lifetime=dt.timedelta(days=1),
                now=utcnow if issued_at is None else lambda: issued_at,
            )
            tokens.append(token)
    finally:
        await engine.dispose()
    return tokens[0]


def issue_user_key(
    stratus: StratusUp, user_id: str, *, issued_at: dt.datetime | None = None
) -> str:
    """A key for an invited user, as if they had signed in and created one (at ``issued_at``:
    a key issued two days ago for a day is expired without waiting for it)."""
    return asyncio.run(_issue_user_key(stratus, user_id, issued_at))


async def _authenticates(stratus: StratusUp, token: str, at: dt.datetime) -> bool:
    engine = create_engine(_database_url(stratus))
    try:
        async with create_sessionmaker(engine)() as session:
            try:
                await api_keys.authenticate(session, token, now=lambda: at)
            except Unauthenticated:
                return False
            return True
    finally:
        await engine.dispose()


def authenticates_at(stratus: StratusUp, token: str, at: dt.datetime) -> bool:
    """Whether the running Stratus accepts ``token`` at the instant ``at`` (its own check,
    with the clock injected)."""
    return asyncio.run(_authenticates(stratus, token, at))


def invite(stratus: StratusUp, admin_key: str, email: str, role: str) -> dict[str, Any]:
    with http(stratus, admin_key) as client:
        response = client.post("/users", json={"email": email, "account_role": role})
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()
    return user


def user_with_key(
    stratus: StratusUp, admin_key: str, email: str, role: str
) -> tuple[dict[str, Any], str]:
    user = invite(stratus, admin_key, email, role)
    return user, issue_user_key(stratus, user["id"])


def service_account_with_key(
    stratus: StratusUp, admin_key: str, body: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    with http(stratus, admin_key) as client:
        created = client.post("/service-accounts", json=body)
        assert created.status_code == 201, created.text
        service_account: dict[str, Any] = created.json()
        key = client.post(
            "/api-keys",
            json={
                "display_name": "ci",
                "expiry": expiry(),
                "owner_type": "service_account",
                "owner_id": service_account["id"],
            },
        )
        assert key.status_code == 201, key.text
    return service_account, str(key.json()["token"])


def assert_problem(response: Any, status: int, problem: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEM + problem, response.text
