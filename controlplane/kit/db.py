"""Engine, sessions and the one way to open a unit of work (:func:`unit_of_work`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
import time
from collections import deque, namedtuple
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy.ext.asyncio
from sqlalchemy import Executable, Select, event, exc, make_url
from sqlalchemy.engine import Engine, Row
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.util import greenlet_spawn

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


# A pooled server connection idle for longer than this is pinged when checked out (a dead one
# is replaced before the request uses it: the server restarted, a proxy dropped it). One in
# steady use is not: a ping per checkout was a round trip on every request.
PING_AFTER_IDLE_SECONDS = 1.0


# Connections a process keeps to a database server, and how many more it may open at a peak
# (closed again when returned): a connection opened per request beyond the pool cost more than
# the request. Three processes (two APIs and a worker) stay under PostgreSQL's default
# max_connections (100).
SERVER_POOL: dict[str, Any] = {"pool_size": 16, "max_overflow": 8}


def _ping_when_idle(engine: AsyncEngine) -> None:
    dialect = engine.sync_engine.dialect

    def stamp(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as error:
            # The pool closes this connection and checks out another (a fresh one, as the
            # disconnect invalidates every connection opened before it).
            raise exc.DisconnectionError(f"a pooled connection is dead: {error}") from error

    event.listen(engine.sync_engine, "connect", stamp)
    event.listen(engine.sync_engine, "checkin", stamp)
    event.listen(engine.sync_engine, "checkout", checkout)


def create_engine(url: str) -> AsyncEngine:
    # hide_parameters: a database error's message (logged, or shown in a 500's traceback)
    # would otherwise carry the statement's values: API-key hashes, emails.
    sqlite = url.startswith("sqlite")
    # Looked up when called, so that OpenTelemetry's SQLAlchemy instrumentation (installed by
    # kit.telemetry when an exporter is set) traces the engine.
    engine = sqlalchemy.ext.asyncio.create_async_engine(
        url,
        hide_parameters=True,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS} if sqlite else {},
        **({} if sqlite else SERVER_POOL),
    )
    if sqlite:
        private_sqlite_file(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "connect", _sqlite_driver_transactions_off)
        event.listen(engine.sync_engine, "before_cursor_execute", _sqlite_begin_immediate)
    else:
        _ping_when_idle(engine)
    return engine


# How long a read on the event loop's thread waits on SQLite (in WAL mode readers do not wait
# for the writer; only rare events such as WAL recovery make them): short, as the whole
# process waits with it. Past it the read fails as busy (503, retry).
SQLITE_READ_BUSY_TIMEOUT_SECONDS = 0.5


class _InLoopCursor:
    """An ``aiosqlite`` cursor's interface over a ``sqlite3`` cursor run in the calling thread."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> _InLoopCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> _InLoopCursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, parameters: Any) -> _InLoopCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _InLoopConnection:
    """The part of ``aiosqlite.Connection`` SQLAlchemy's aiosqlite dialect uses, run in the
    calling thread: a read is a few microseconds of SQLite, where handing each step to
    aiosqlite's thread and back cost more than the read (about a dozen hand-offs a request)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = self._connection = connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _InLoopCursor:
        return _InLoopCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Any = ()) -> _InLoopCursor:
        return await self.cursor().execute(sql, parameters)

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()


def _sqlite_reader(url: str) -> AsyncEngine:
    """An engine for read-only units of work on SQLite whose statements run on the event
    loop's thread, on connections that refuse to write (``PRAGMA query_only``)."""
    database = make_url(url).database
    assert database, "an in-memory SQLite database has no second connection to read it"

    async def connect() -> Any:
        connection = sqlite3.connect(
            database,
            timeout=SQLITE_READ_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute("PRAGMA query_only=ON")
        connection.execute("PRAGMA foreign_keys=ON")
        return _InLoopConnection(connection)

    # One connection per read in flight (a handful of file descriptors each, opened in
    # microseconds): more than that, closed when returned.
    return sqlalchemy.ext.asyncio.create_async_engine(
        url, hide_parameters=True, async_creator=connect, pool_size=32, max_overflow=-1
    )


_WRITES = ("INSERT", "UPDATE", "DELETE", "MERGE", "CREATE", "ALTER", "DROP", "TRUNCATE")


def _refuse_writes(
    _conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _many: bool
) -> None:
    if statement.lstrip()[:8].upper().startswith(_WRITES):
        raise RuntimeError("a read-only unit of work may not write")


# The read-only units of work's own pool on a server (beside SERVER_POOL): a read holds its
# connection for one statement's round trip, not for the whole request, so a few serve a
# burst of 50 clients. Two APIs and a worker at their peaks still stay under PostgreSQL's
# default max_connections (100): the read engine and the hottest reads' own connections
# (ServerReader) share this budget, half each.
SERVER_READ_POOL: dict[str, Any] = {"pool_size": 8, "max_overflow": 4}
_HALF_READ_POOL = {name: count // 2 for name, count in SERVER_READ_POOL.items()}


def create_read_engine(engine: AsyncEngine) -> AsyncEngine:
    """The engine of read-only units of work (:func:`read_only`) beside ``engine``: on a server
    each statement commits by itself (AUTOCOMMIT: no BEGIN and COMMIT round trips around a
    read) on a pool of its own, whose connections are in AUTOCOMMIT from the start and are not
    rolled back when returned (no transaction is ever open on them: switching a shared pool's
    connection in and out of AUTOCOMMIT and resetting it cost several driver calls a read); on
    SQLite reads run on the event loop's thread."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.url.get_backend_name() == "sqlite":
        return _sqlite_reader(url)
    reader = sqlalchemy.ext.asyncio.create_async_engine(
        url,
        hide_parameters=True,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        **_HALF_READ_POOL,
    )
    _ping_when_idle(reader)
    event.listen(reader.sync_engine, "before_cursor_execute", _refuse_writes)
    return reader


class _Prepared:
    """A Core SELECT compiled once for a dialect: its SQL, how to bind its parameters (by name,
    or by position for SQLite's ``?``) and how to turn a fetched tuple into a row whose columns
    are also attributes."""

    def __init__(self, statement: Select[Any], dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        if self.sql.lstrip()[:8].upper().startswith(_WRITES):
            raise RuntimeError("a read-only unit of work may not write")
        # (name in the SQL, fixed value or None when the caller gives it, driver conversion)
        self.binds: list[tuple[str, bool, Any, Callable[[Any], Any] | None]] = []
        for name, bind in compiled.binds.items():
            if bind.expanding or bind.literal_execute:
                raise ValueError(f"parameter {name!r}: an IN list is not prepared once")
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.binds.append((name, bind.required, bind.effective_value, processor))
        # SQLite's driver binds by position: each ``?`` of the SQL in order (a parameter used
        # twice is bound twice).
        self.positions: list[str] | None = (
            None if compiled.positiontup is None else list(compiled.positiontup)
        )
        columns = list(statement.selected_columns)
        row_class = namedtuple("Row", [column.key for column in columns])  # type: ignore[misc]
        self.row: Callable[[Iterable[Any]], Sequence[Any]] = row_class._make
        self.results = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]

    def parameters(self, given: Mapping[str, Any]) -> dict[str, Any] | tuple[Any, ...]:
        bound = {}
        for name, required, fixed, processor in self.binds:
            value = given[name] if required else fixed
            bound[name] = value if processor is None else processor(value)
        if self.positions is None:
            return bound
        return tuple(bound[name] for name in self.positions)

    def make_row(self, values: Sequence[Any]) -> Sequence[Any]:
        return self.row(
            value if processor is None else processor(value)
            for value, processor in zip(values, self.results, strict=True)
        )


class _DirectReader:
    """What both direct readers share: statements compiled once per statement object, and
    driver errors raised as SQLAlchemy's (as the engine's would be)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._dialect = engine.sync_engine.dialect
        self._prepared: dict[int, tuple[Select[Any], _Prepared]] = {}

    def _prepare(self, statement: Select[Any]) -> _Prepared:
        known = self._prepared.get(id(statement))
        if known is not None and known[0] is statement:
            return known[1]
        prepared = _Prepared(statement, self._dialect)
        # The statement is kept with it, so its id is not reused by another.
        self._prepared[id(statement)] = (statement, prepared)
        return prepared

    def _wrapped(
        self, sql: str, error: Exception, driver_error: type[Exception], invalidated: bool
    ) -> exc.StatementError:
        return exc.DBAPIError.instance(
            sql,
            None,
            error,
            driver_error,
            hide_parameters=True,
            connection_invalidated=invalidated,
            dialect=self._dialect,
        )

    async def first_row(
        self, statement: Select[Any], parameters: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        """The first row of a Core SELECT, its columns by position and by name."""
        raise NotImplementedError

    async def close(self) -> None:
        """Close the reader's connections."""


class LocalReader(_DirectReader):
    """The hottest reads on SQLite, on one ``sqlite3`` connection of their own, run on the
    event loop's thread like every SQLite read here (:func:`_sqlite_reader`): SQLAlchemy's
    execution and result machinery around a one-row SELECT cost several times the read. The
    statement is compiled once with the engine's dialect (the driver caches it prepared).

    One connection serves every read: a read runs start to end without yielding to the loop,
    so no two are ever in flight. It refuses writes (``PRAGMA query_only``), is in autocommit
    (each SELECT sees what was committed before it) and waits at most
    ``SQLITE_READ_BUSY_TIMEOUT_SECONDS`` on a lock. A failed read closes it (the next opens a
    new one) and is raised as SQLAlchemy's ``DBAPIError``, as the engine's would be."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        database = engine.url.database
        assert database, "an in-memory SQLite database has no second connection to read it"
        self._database = database
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self._database,
            timeout=SQLITE_READ_BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
        )
        connection.execute("PRAGMA query_only=ON")
        return connection

    async def first_row(
        self, statement: Select[Any], parameters: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        prepared = self._prepare(statement)
        bound = prepared.parameters(parameters)
        try:
            if self._connection is None:
                self._connection = self._connect()
            values = self._connection.execute(prepared.sql, bound).fetchone()
        except sqlite3.Error as error:
            await self.close()
            raise self._wrapped(prepared.sql, error, sqlite3.Error, invalidated=False) from error
        return None if values is None else prepared.make_row(values)

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


class ServerReader(_DirectReader):
    """The hottest reads on PostgreSQL, on psycopg's own asyncio connections: SQLAlchemy's
    asyncio bridge (a greenlet per statement), its pool and its result machinery cost more
    CPU than the round trip of a one-row SELECT. Statements come from the same Core
    constructs as everywhere (tenancy-scoped by ``kit.tenancy.scoped_once``), compiled once
    with the engine's dialect and prepared on each connection (psycopg ``prepare=True``).

    Connections are in autocommit (a read is one round trip), opened when first needed and
    bounded by half of ``SERVER_READ_POOL`` (the read engine's pool has the other half: 4
    kept idle, at most 6 open; a read beyond waits for one). A broken connection is
    discarded with every idle one (a server restart dropped them all) and the read runs once
    more on a new one; a failure is raised as SQLAlchemy's ``DBAPIError``, as the engine's
    would be (``connection_invalidated`` for a lost connection: 503 ``storage-unavailable``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._connect_args = self._dialect.create_connect_args(engine.url)
        self._idle: deque[psycopg.AsyncConnection[Any]] = deque()
        self._keep = _HALF_READ_POOL["pool_size"]
        self._slots = asyncio.Semaphore(self._keep + _HALF_READ_POOL["max_overflow"])

    async def first_row(
        self, statement: Select[Any], parameters: Mapping[str, Any]
    ) -> Sequence[Any] | None:
        prepared = self._prepare(statement)
        bound = prepared.parameters(parameters)
        async with self._slots:
            try:
                values = await self._fetch_one(prepared.sql, bound)
            except _ConnectionLost:
                await self._drop_idle()
                try:
                    values = await self._fetch_one(prepared.sql, bound)
                except _ConnectionLost as lost:
                    raise self._wrapped(
                        prepared.sql, lost.error, psycopg.Error, lost.invalidated
                    ) from lost.error
            except psycopg.Error as error:
                wrapped = self._wrapped(prepared.sql, error, psycopg.Error, invalidated=False)
                raise wrapped from error
        return None if values is None else prepared.make_row(values)

    async def _fetch_one(
        self, sql: str, parameters: dict[str, Any] | tuple[Any, ...]
    ) -> tuple[Any, ...] | None:
        if self._idle:
            connection = self._idle.pop()
        else:
            try:
                connection = await self._connect()
            except psycopg.OperationalError as error:
                raise _ConnectionLost(error, invalidated=False) from error
        try:
            cursor = await connection.execute(sql, parameters, prepare=True)
            values: tuple[Any, ...] | None = await cursor.fetchone()
        except psycopg.Error as error:
            if connection.broken or connection.closed:
                await _close(connection)
                raise _ConnectionLost(error, invalidated=True) from error
            # A statement's own error (autocommit: no transaction left open).
            await self._release(connection)
            raise
        except BaseException:
            # Interrupted mid-statement: the connection's state is unknown, not reused.
            await _close(connection)
            raise
        await self._release(connection)
        return values

    async def _release(self, connection: psycopg.AsyncConnection[Any]) -> None:
        if len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            await _close(connection)  # one opened at a peak

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        args, kwargs = self._connect_args
        return await psycopg.AsyncConnection.connect(*args, autocommit=True, **kwargs)

    async def _drop_idle(self) -> None:
        while self._idle:
            await _close(self._idle.pop())

    async def close(self) -> None:
        await self._drop_idle()


class _ConnectionLost(Exception):
    """A connection found broken (``invalidated``: it was open) or that could not be made."""

    def __init__(self, error: psycopg.Error, *, invalidated: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.invalidated = invalidated


async def _close(connection: psycopg.AsyncConnection[Any]) -> None:
    with suppress(psycopg.Error):
        await connection.close()


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


class _ReadOnlySyncSession(Session):
    """The ORM session under :class:`ReadOnlySession`: it refuses to flush a change."""


@event.listens_for(_ReadOnlySyncSession, "before_flush")
def _refuse_flush(session: Session, _context: Any, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("a read-only unit of work may not write")


class ReadOnlySession(AsyncSession):
    """The session of a read-only unit of work. Each read is its own transaction, ended (its
    connection back in the pool) when the read ends, failed or not; so the session holds
    nothing between reads and needs no closing. An ORM change is refused when it would be
    flushed. Its first read retries once when it met a dead connection (the server restarted
    since the pooled connection was last used: the pool opens a new one): with nothing
    loaded yet and nothing written, reading again is the same unit of work."""

    sync_session_class = _ReadOnlySyncSession

    def __init__(
        self, *args: Any, direct_reader: _DirectReader | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.direct_reader = direct_reader

    async def _once_more(self, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            try:
                result = await call()
            except exc.DBAPIError as error:
                if not error.connection_invalidated or len(self.sync_session.identity_map):
                    raise
                await self.rollback()
                result = await call()
            # Each statement is its own transaction here (AUTOCOMMIT; SQLite's reader has no
            # transaction either), and its rows are buffered: the connection goes back to the
            # pool now rather than when the request ends, so concurrent requests share a few
            # instead of holding one each (a burst beyond the pool opened and closed a
            # connection a read). Loaded objects stay in the session (expire_on_commit=False).
            await self.commit()
        except BaseException:
            await self.rollback()
            raise
        return result

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._once_more(lambda: super(ReadOnlySession, self).execute(*args, **kwargs))

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await self._once_more(lambda: super(ReadOnlySession, self).scalar(*args, **kwargs))

    async def scalars(self, *args: Any, **kwargs: Any) -> Any:
        return await self._once_more(lambda: super(ReadOnlySession, self).scalars(*args, **kwargs))

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._once_more(lambda: super(ReadOnlySession, self).get(*args, **kwargs))

    async def __aexit__(self, type_: Any, value: Any, traceback: Any) -> None:
        # Each read returned its connection when it ended (_once_more, first_row): with no
        # transaction open and nothing loaded, closing would release nothing, and it costs a
        # task and a greenlet (SQLAlchemy closes in a task of its own), per request.
        sync_session = self.sync_session
        if sync_session.in_transaction() or len(sync_session.identity_map):
            await super().__aexit__(type_, value, traceback)

    async def first_row(
        self, statement: Executable, parameters: Mapping[str, Any]
    ) -> Row[Any] | Sequence[Any] | None:
        """The first row of a Core ``statement`` (columns, no ORM entity; by position and by
        name) without a session transaction, identity map or ORM loading, a fraction of the
        CPU of :meth:`execute` for the hottest reads: a SELECT on the session's direct reader
        (:class:`ServerReader` on PostgreSQL, :class:`LocalReader` on SQLite), anything else on
        a pooled connection of this session's engine held for that one statement. A dead
        connection is met as by :meth:`execute` (read once more)."""
        if self.direct_reader is not None and isinstance(statement, Select):
            return await self.direct_reader.first_row(statement, parameters)
        engine = self.get_bind()
        assert isinstance(engine, Engine), "a read-only session is bound to its engine"

        def read() -> Row[Any] | None:
            with engine.connect() as connection:
                return connection.execute(statement, parameters).first()

        try:
            return await greenlet_spawn(read)
        except exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
            return await greenlet_spawn(read)


def create_read_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Read-only units of work (:func:`read_only`) beside ``engine``'s (closed by
    :func:`dispose_read_sessionmaker`)."""
    reader = create_read_engine(engine)
    direct: _DirectReader = (
        LocalReader(reader) if reader.url.get_backend_name() == "sqlite" else ServerReader(reader)
    )
    return async_sessionmaker(
        reader, expire_on_commit=False, class_=ReadOnlySession, direct_reader=direct
    )


async def dispose_read_sessionmaker(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Close the connections of :func:`create_read_sessionmaker`'s units of work."""
    direct: _DirectReader | None = sessionmaker.kw["direct_reader"]
    if direct is not None:
        await direct.close()
    await sessionmaker.kw["bind"].dispose()


@asynccontextmanager
async def read_only(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A unit of work that only reads, on a sessionmaker bound to :func:`create_read_engine`:
    nothing to commit. For handlers known not to write (a write is refused: by SQLite's
    ``query_only``, by the engine's statement check on a server, and here for ORM changes)."""
    async with sessionmaker() as session:
        yield session
        if session.new or session.dirty or session.deleted or session.info.get("after_commit"):
            raise RuntimeError("a read-only unit of work may not write")
