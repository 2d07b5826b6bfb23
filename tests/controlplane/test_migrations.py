"""Migrations run from empty and upgrade from every earlier revision, on SQLite and PostgreSQL,
to a schema that matches the ORM models exactly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from controlplane.kit.migrate import alembic_config, migrate, sync_url
from controlplane.models import Base
from controlplane.models.base import UTCDateTime
from infra.postgres import PostgresServer

SCRIPTS = ScriptDirectory.from_config(alembic_config("sqlite://"))
REVISIONS = sorted(revision.revision for revision in SCRIPTS.walk_revisions())


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database: a new SQLite file, or a new database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'stratus.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    name = server.unique_database("stratus_migrations")
    try:
        yield server.database_url(name)
    finally:
        server.drop_database(name)


def schema_differences(url: str) -> list[object]:
    """What autogenerate would change to make the migrated schema match the ORM models."""
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "compare_server_default": False}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_migrations_from_empty_match_the_models(empty_database: str) -> None:
    """An empty database migrated to every head has exactly the models' schema."""
    migrate(empty_database)
    assert schema_differences(empty_database) == []


@pytest.mark.parametrize("revision", REVISIONS)
def test_upgrade_from_every_revision(empty_database: str, revision: str) -> None:
    """A database left at any earlier revision upgrades to head, to the models' schema."""
    command.upgrade(alembic_config(empty_database), revision)
    migrate(empty_database)
    assert schema_differences(empty_database) == []


def test_backfills_keep_existing_rows(empty_database: str) -> None:
    """The data migrations (0007's usage month, 0013's metrics URL, 0014's cell registry) fill
    in rows written before them, on each database's own SQL."""
    config = alembic_config(empty_database)
    command.upgrade(config, "0006_usage")
    account = sa.table(
        "accounts",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    usage = sa.table(
        "usage_records",
        sa.column("namespace_id", sa.String),
        sa.column("account_id", sa.String),
        sa.column("hour_start", UTCDateTime()),
        sa.column("kind", sa.String),
        sa.column("quantity", sa.BigInteger),
        sa.column("created_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
    )
    now = dt.datetime(2026, 4, 2, tzinfo=dt.UTC)
    # The last hour of March: a month boundary in UTC, whatever the server's time zone.
    last_hour = dt.datetime(2026, 3, 31, 23, tzinfo=dt.UTC)
    engine = create_engine(sync_url(empty_database))
    try:
        with engine.begin() as connection:
            connection.execute(
                account.insert().values(id="a1", name="A", created_at=now, updated_at=now)
            )
            connection.execute(
                usage.insert().values(
                    namespace_id="ns.a1",
                    account_id="a1",
                    hour_start=last_hour,
                    kind="actions",
                    quantity=7,
                    created_at=now,
                    updated_at=now,
                )
            )
        command.upgrade(config, "0012")
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO cells (id, account_id, provider, grpc_port, metrics_port,"
                    " http_port, address, created_at, updated_at) VALUES ('c1', 'a1', 'local',"
                    " 7233, 9090, 7243, '127.0.0.1:7233', :now, :now)"
                ).bindparams(sa.bindparam("now", now, type_=UTCDateTime()))
            )
        migrate(empty_database)
        with engine.connect() as connection:
            period = connection.execute(
                sa.select(sa.column("period_start", UTCDateTime())).select_from(
                    sa.table("usage_records")
                )
            ).scalar_one()
            metrics_url = connection.execute(sa.text("SELECT metrics_url FROM cells")).scalar_one()
            # 0014: a local cell stays its account's dedicated, active cell, without a limit.
            registry = connection.execute(
                sa.text(
                    "SELECT account_id, placement, state, max_namespaces, tls_key_sealed,"
                    " health_state FROM cells"
                )
            ).one()
    finally:
        engine.dispose()
    assert period == dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert metrics_url == "http://127.0.0.1:9090/metrics"
    assert tuple(registry) == ("a1", "dedicated", "active", None, None, "unknown")


def test_operator_sessions_keep_users_sessions_and_the_two_kinds_apart(
    empty_database: str,
) -> None:
    """0015: a session written before it stays its user's; the database itself refuses an
    operator session that names an account or a user, and a user's that names no user; a
    downgrade drops the operator's sessions only."""
    config = alembic_config(empty_database)
    command.upgrade(config, "0003")
    command.upgrade(config, "0014_external_cells")
    now = sa.bindparam("now", dt.datetime(2026, 12, 1, tzinfo=dt.UTC), type_=UTCDateTime())
    engine = create_engine(sync_url(empty_database))

    def insert(connection: sa.Connection, sql: str) -> None:
        connection.execute(sa.text(sql).bindparams(now))

    try:
        with engine.begin() as connection:
            insert(connection, "INSERT INTO accounts VALUES ('a1', 'A', :now, :now)")
            insert(
                connection,
                "INSERT INTO users (id, account_id, email, account_role, created_at, updated_at)"
                " VALUES ('u1', 'a1', 'u@a.example', 'owner', :now, :now)",
            )
            insert(
                connection,
                "INSERT INTO api_keys (id, token_hash, owner_type, display_name, disabled,"
                " created_at, updated_at) VALUES ('k1', 'h', 'operator', 'operator', false,"
                " :now, :now)",
            )
            insert(
                connection,
                "INSERT INTO web_sessions (id, token_hash, user_id, account_id, csrf_token,"
                " identity_provider, expires_at, created_at, updated_at) VALUES ('s1', 't1',"
                " 'u1', 'a1', 'c', 'oidc', :now, :now, :now)",
            )
        migrate(empty_database)
        add_session = sa.text(
            "INSERT INTO web_sessions (id, token_hash, principal_kind, user_id, account_id,"
            " operator_key_id, csrf_token, identity_provider, expires_at, created_at,"
            " updated_at) VALUES (:id, :id, :kind, :user, :account, :key, 'c', 'x', :now, :now,"
            " :now)"
        ).bindparams(now)
        with engine.begin() as connection:
            kept = connection.execute(
                sa.text("SELECT principal_kind, user_id, account_id FROM web_sessions")
            ).one()
            operator = {"kind": "operator", "user": None, "account": None, "key": "k1"}
            connection.execute(add_session, {"id": "s2", **operator})
        for wrong in (
            {"kind": "operator", "user": None, "account": "a1", "key": "k1"},
            {"kind": "operator", "user": "u1", "account": "a1", "key": "k1"},
            {"kind": "operator", "user": None, "account": None, "key": None},
            {"kind": "user", "user": None, "account": "a1", "key": None},
            {"kind": "user", "user": "u1", "account": "a1", "key": "k1"},
        ):
            with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
                connection.execute(add_session, {"id": "s3", **wrong})
        command.downgrade(config, "0014_external_cells")
        with engine.connect() as connection:
            left = connection.execute(sa.text("SELECT id FROM web_sessions")).scalars().all()
    finally:
        engine.dispose()
    assert tuple(kept) == ("user", "u1", "a1")
    assert left == ["s1"]
