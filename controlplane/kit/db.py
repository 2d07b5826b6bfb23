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


# How long a statement waits for SQLite's one write lock (held by another connection of this
# process or by another process) before failing with "database is locked".
SQLITE_BUSY_TIMEOUT_SECONDS = 10

# Statements that write, and so must run inside a transaction that holds the write lock.
_SQLITE_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Several processes (API, worker) share one SQLite file: WAL lets readers run beside the
    # writer and busy_timeout makes writers wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_driver_transactions_off(dbapi_connection: Any, _record: Any) -> None:
    # The driver would BEGIN (deferred) by itself, but not before a SAVEPOINT;
    # _sqlite_begin_immediate does it instead.
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(
    conn: Any, cursor: Any, statement: str, _parameters: Any, _context: Any, _many: bool
) -> None:
    """Open the transaction at its first write, with ``BEGIN IMMEDIATE``: it takes the write
    lock up front, waiting up to the busy timeout for it. A transaction that read first and
    then wrote would instead fail at once with "database is locked" whenever another
    connection had written since its read (SQLite cannot upgrade a stale snapshot, and does
    not wait for it). Reads before the first write run outside a transaction, so they never
    queue for the lock (SQLAlchemy's "begin" is not used: it would make every read a writer)."""
    if conn.connection.driver_connection.in_transaction:
        return
    if statement.lstrip()[:9].upper().startswith(_SQLITE_WRITES):
        cursor.execute("BEGIN IMMEDIATE")


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
    sqlite = url.startswith("sqlite")
    # Looked up when called, so that OpenTelemetry's SQLAlchemy instrumentation (installed by
    # kit.telemetry when an exporter is set) traces the engine.
    engine = sqlalchemy.ext.asyncio.create_async_engine(
        url,
        pool_pre_ping=not sqlite,
        hide_parameters=True,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS} if sqlite else {},
    )
    if sqlite:
        private_sqlite_file(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "connect", _sqlite_driver_transactions_off)
        event.listen(engine.sync_engine, "before_cursor_execute", _sqlite_begin_immediate)
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
