"""Shared fixtures: a real ``stratus up`` in a temporary data dir on free 127.0.0.1 ports."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from support import StratusUp, free_port

from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.kit.migrate import migrate
from infra.postgres import PostgresServer, postgres_for_tests

# Fixtures that start real components: a whole `stratus up`, Temporal cells, a gateway in front
# of them, the IdPs, SeaweedFS. A test that uses one (directly or through another fixture) is
# `slow` and stays out of `make test-fast`; a test that starts a component inline says so with
# `@pytest.mark.slow` (or `pytestmark` for a whole module). The private PostgreSQL server
# (`postgres`) is not slow: it starts in under a second, and the database tests need it.
SLOW_FIXTURES = frozenset(
    {
        "stratus",  # tests/conftest.py (and modules' own): `stratus up` with its system cell
        "fresh_stratus",
        "cells",  # tests/dataplane/gateway/conftest.py: two local cells
        "gateway",  # ... and the shared gateway in front of them
        "seaweed_s3",  # tests/billing/conftest.py: the S3 server
        "oidc",  # tests/controlplane/oidc: a Stratus and the npm oidc-provider IdP
        "saml",  # tests/controlplane/saml: the pysaml2 IdP (over the shared Stratus)
    }
)


# Fixtures parametrized over the two databases ("sqlite", "postgresql"): a test that uses one
# runs once on each. A test (or module) marked `sqlite_only` keeps only its SQLite variant: it is
# about SQLite itself (its write lock, the database file in the data dir). One marked
# `postgresql_only` keeps only its PostgreSQL variant: it tests the production path that only
# PostgreSQL serves (several replicas of each role on one database).
DATABASE_FIXTURES = ("stratus", "fresh_stratus", "database_env", "database_url")
DATABASES = ("sqlite", "postgresql")


def _name_xdist_group(item: pytest.Item) -> None:
    """Name a grouped test `<nodeid>@<group>`, which is how pytest-xdist's scheduler sees the
    group. xdist 3.8 does it itself by setting ``_nodeid``, which pytest 9 no longer reads (its
    node ids live in ``_id``), so its groups would silently not hold."""
    groups = sorted({str(mark.args[0]) for mark in item.iter_markers("xdist_group")})
    if not groups or "@" in item.nodeid:
        return
    named = f"{item.nodeid}@{'_'.join(groups)}"
    if hasattr(item, "_id"):
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(named)
    else:
        item._nodeid = named


def _uses_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    return any(
        definition.scope in ("module", "class")
        for definitions in info.name2fixturedefs.values()
        for definition in definitions
    )


def _databases(item: pytest.Item) -> set[str]:
    """The databases a test's parameters put it on (none if it takes no database fixture)."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return set()
    return {callspec.params[name] for name in DATABASE_FIXTURES if name in callspec.params}


@pytest.hookimpl(wrapper=True)  # around pytest-xdist's, which reads the xdist_group marks
def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> Iterator[None]:
    """Mark `slow` every test whose fixture closure starts a real component; deselect the
    PostgreSQL variants of `sqlite_only` tests and the SQLite ones of `postgresql_only` tests.
    Under pytest-xdist (`--dist loadgroup`) a module whose tests share a module-scoped fixture
    runs on one worker: the fixture starts once, and tests that build on each other's state (an
    export sink, then its deliveries) keep their order."""
    kept, dropped = [], []
    for item in items:
        if _uses_module_fixture(item):
            module = item.nodeid.split("::", 1)[0].removesuffix(".py").replace("/", ".")
            item.add_marker(pytest.mark.xdist_group(module))
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        databases = _databases(item)
        if ("postgresql" in databases and item.get_closest_marker("sqlite_only") is not None) or (
            "sqlite" in databases and item.get_closest_marker("postgresql_only") is not None
        ):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    yield
    if getattr(config.option, "loadgroup", False):
        for item in items:
            _name_xdist_group(item)


@pytest.fixture(scope="session", autouse=True)
def private_config_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The CLI's saved credentials (``$XDG_CONFIG_HOME/stratus``) of every `stratus` a test runs
    go to the session's tmp dir: never the developer's, never another pytest worker's."""
    before = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config-home"))
    yield
    if before is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = before


@pytest.fixture(scope="session", params=DATABASES)
def stratus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StratusUp]:
    """A Stratus shared by the tests that do not restart or kill it: on SQLite (in its data
    dir), then on a new (migrated) PostgreSQL database of the session's server. pytest groups
    the tests by this parameter, so each variant starts once, and the SQLite one is stopped
    before the PostgreSQL one starts."""
    with stratus_database(request) as extra_env:
        up = StratusUp(
            tmp_path_factory.mktemp(f"stratus-{request.param}"),
            free_port(),
            free_port(),
            extra_env=extra_env,
        )
        try:
            up.start()
            yield up
        finally:
            up.cleanup()


@pytest.fixture(scope="module", params=DATABASES)
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The settings (``extra_env``) that put a module's own API process or Stratus on SQLite,
    then on a new (migrated) PostgreSQL database."""
    with stratus_database(request) as extra_env:
        yield extra_env


@contextlib.contextmanager
def stratus_database(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The settings that put a Stratus on the database of ``request.param``: none for SQLite
    (the data dir's file), ``STRATUS_DATABASE_URL`` of a new PostgreSQL database (dropped
    afterwards) for "postgresql": a copy of the session's migrated template, so `stratus up`
    finds it at head instead of migrating it (test_postgres_e2e starts one on an empty
    database)."""
    if request.param == "sqlite":
        yield {}
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    template: str = request.getfixturevalue("migrated_postgres_template")
    name = server.unique_database("stratus_up", template=template)
    try:
        yield {"STRATUS_DATABASE_URL": server.database_url(name)}
    finally:
        server.drop_database(name)


@pytest.fixture(params=DATABASES)
def fresh_stratus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StratusUp]:
    """A Stratus of the test's own, for tests that stop, restart or kill it (not started): on
    SQLite, then on a new PostgreSQL database, since what survives a restart is the database."""
    with stratus_database(request) as extra_env:
        up = StratusUp(tmp_path / "data", free_port(), free_port(), extra_env=extra_env)
        try:
            yield up
        finally:
            up.cleanup()


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Spans of in-process components, collected in memory."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server shared by the session: a private one from Debian's package on a free
    port (infra/postgres.py), or the one ``STRATUS_TEST_DATABASE_URL`` names."""
    with postgres_for_tests() as server:
        yield server


@pytest.fixture(scope="session")
def migrated_postgres_template(postgres: PostgresServer) -> Iterator[str]:
    """A PostgreSQL database migrated to head once; each test's database is a copy of it
    (CREATE DATABASE ... TEMPLATE), far cheaper than migrating every time."""
    name = postgres.unique_database("stratus_template")
    migrate(postgres.database_url(name))
    try:
        yield name
    finally:
        postgres.drop_database(name)


@pytest.fixture
def pg_url(postgres: PostgresServer, migrated_postgres_template: str) -> Iterator[str]:
    """The URL of a migrated, empty PostgreSQL database of the test's own (the race tests')."""
    name = postgres.unique_database("stratus_race", template=migrated_postgres_template)
    try:
        yield postgres.database_url(name)
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database file migrated to head once; each test's database is a copy of it
    (a copy takes milliseconds, a migration about a second)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "stratus.db"
    migrate(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a migrated, empty database of the test's own: SQLite, then PostgreSQL (each a
    copy of a database migrated once per session)."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("migrated_sqlite_template")
        path = tmp_path / "stratus.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    pg_template: str = request.getfixturevalue("migrated_postgres_template")
    name = server.unique_database("stratus_test", template=pg_template)
    try:
        yield server.database_url(name)
    finally:
        server.drop_database(name)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on a migrated database of the test's own (for tests below the API), once on
    SQLite and once on PostgreSQL."""
    engine = create_engine(database_url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()
