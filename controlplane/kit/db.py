"""Engine, sessions and the one way to open a unit of work (:func:`unit_of_work`)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy.ext.asyncio
from sqlalchemy import event, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

AfterCommit = Callable[[], Awaitable[None]]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Several processes (API, worker) share one SQLite file: WAL lets readers run beside the
    # writer and busy_timeout makes writers wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def private_sqlite_file(url: str) -> None:
    """Create the SQLite database file 0600 before SQLite does (it would use the umask, often
    0644); SQLite gives its WAL, shared-memory and journal files the database file's mode. An
    existing file left readable to others by an earlier version is tightened."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    suffixes = ("", "-wal", "-shm", "-journal")
    for companion in (path.with_name(path.name + suffix) for suffix in suffixes):
        if companion.exists() and companion.stat().st_mode & 0o077:
            companion.chmod(0o600)


def create_engine(url: str) -> AsyncEngine:
    # hide_parameters: a database error's message (logged, or shown in a 500's traceback)
    # would otherwise carry the statement's values: API-key hashes, emails.
    # Looked up when called, so that OpenTelemetry's SQLAlchemy instrumentation (installed by
    # kit.telemetry when an exporter is set) traces the engine.
    engine = sqlalchemy.ext.asyncio.create_async_engine(
        url, pool_pre_ping=not url.startswith("sqlite"), hide_parameters=True
    )
    if url.startswith("sqlite"):
        private_sqlite_file(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def install_sqlite_pragmas(engine: Engine) -> None:
    if engine.url.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Run ``action`` once the unit of work has committed (e.g. start a workflow for a row
    that must be visible to the workflow's activities)."""
    session.info.setdefault("after_commit", []).append(action)


@asynccontextmanager
async def unit_of_work(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """The one way a session is opened, by requests (``SessionDep``), the worker's activities
    and loops, and sign-in alike: everything done in the block commits together when it ends,
    then the after-commit actions run; an exception rolls it all back (and drops them)."""
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            session.info.pop("after_commit", None)
            raise
        await session.commit()
        actions: list[AfterCommit] = session.info.pop("after_commit", [])
        for action in actions:
            await action()
