"""Read-only units of work (kit.db.read_only): they refuse to write, on SQLite and on
PostgreSQL, and a read survives the database dropping the API's pooled connections (what a
server restart does to them)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import bindparam, exc, select, text
from support import ApiAlone

from auth import AccountRole, AuthMethod, Principal, PrincipalKind
from controlplane.kit.db import (
    ReadOnlySession,
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
    dispose_read_sessionmaker,
    read_only,
    unit_of_work,
)
from controlplane.models import Account, Namespace
from controlplane.namespaces.repository import NamespaceRepository
from controlplane.states import NamespaceState
from infra.postgres import PostgresServer


async def test_a_read_only_unit_of_work_refuses_to_write(database_url: str) -> None:
    engine = create_engine(database_url)
    sessionmaker = create_read_sessionmaker(engine)
    try:
        async with read_only(sessionmaker) as session:
            assert (await session.execute(text("SELECT count(*) FROM accounts"))).scalar() == 0
        insert = text("INSERT INTO accounts (id) VALUES (:id)")
        # SQLite's query_only refuses it; on a server, the read engine's statement check.
        refusal = (
            "attempt to write a readonly database"
            if "sqlite" in database_url
            else ("a read-only unit of work may not write")
        )
        with pytest.raises(Exception, match=refusal):
            async with read_only(sessionmaker) as session:
                await session.execute(insert, {"id": str(uuid.uuid4())})
    finally:
        await dispose_read_sessionmaker(sessionmaker)
        await engine.dispose()


def _namespace(name: str, account_id: str, **columns: object) -> Namespace:
    return Namespace(
        id=f"{name}.{account_id}",
        account_id=account_id,
        name=name,
        retention_days=3,
        accepted_client_ca="CA",
        state=NamespaceState.ACTIVE,
        resource_version="1",
        **columns,
    )


async def test_the_namespace_read_shows_the_callers_row_as_the_orm_reads_it(
    database_url: str,
) -> None:
    """The hottest read (on its own connections: psycopg's on PostgreSQL, sqlite3's on SQLite;
    a statement compiled once) gives each column as SQLAlchemy would (enums, JSON, booleans,
    timestamps), and only for the caller's account."""
    engine = create_engine(database_url)
    sessionmaker = create_read_sessionmaker(engine)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as setup:
            setup.add_all([Account(id="alpha", name="alpha"), Account(id="bravo", name="bravo")])
            await setup.flush()
            setup.add_all(
                [
                    _namespace(
                        "shown",
                        "alpha",
                        auth_method=AuthMethod.API_KEY,
                        certificate_filters=[{"common_name": "ci"}],
                        tags={"team": "blue"},
                        codec_server={"endpoint": "https://codec.example"},
                        delete_protection=True,
                    ),
                    _namespace("hidden", "bravo"),
                ]
            )
        async with unit_of_work(create_sessionmaker(engine)) as session:
            expected = (
                await session.execute(
                    select(Namespace.__table__).where(Namespace.id == "shown.alpha")
                )
            ).one()
        owner = Principal(PrincipalKind.USER, "u-alpha", "alpha", AccountRole.OWNER, "owner")
        for _ in range(2):  # the second on a pooled connection, the statement prepared
            async with read_only(sessionmaker) as session:
                namespaces = NamespaceRepository(session, owner)
                row = await namespaces.view("shown.alpha")
                assert row is not None
                assert tuple(row) == tuple(expected)
                assert row.auth_method is AuthMethod.API_KEY
                assert row.codec_server == {"endpoint": "https://codec.example"}
                assert row.delete_protection is True
                assert await namespaces.view("hidden.bravo") is None
    finally:
        await dispose_read_sessionmaker(sessionmaker)
        await engine.dispose()


async def test_a_direct_read_binds_a_parameter_used_twice(database_url: str) -> None:
    """A statement naming one parameter twice gets it in both places (SQLite binds by position:
    one value per ``?``)."""
    engine = create_engine(database_url)
    sessionmaker = create_read_sessionmaker(engine)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as setup:
            setup.add_all([Account(id="same", name="same"), Account(id="other", name="x")])
        statement = select(Account.id).where(
            Account.id == bindparam("value"), Account.name == bindparam("value")
        )
        async with read_only(sessionmaker) as session:
            assert isinstance(session, ReadOnlySession)
            row = await session.first_row(statement, {"value": "same"})
            assert row is not None
            assert row.id == "same"
            assert await session.first_row(statement, {"value": "other"}) is None
    finally:
        await dispose_read_sessionmaker(sessionmaker)
        await engine.dispose()


@pytest.mark.sqlite_only
async def test_the_sqlite_direct_read_sees_each_commit_and_recovers_from_a_failed_read(
    database_url: str,
) -> None:
    """SQLite's direct reader keeps one connection: each read sees what was committed before
    it (no snapshot held between reads); a failing read is SQLAlchemy's error, as the
    engine's would be (a lost database is 503 ``storage-unavailable``), and the next read
    opens a new connection."""
    engine = create_engine(database_url)
    sessionmaker = create_read_sessionmaker(engine)
    owner = Principal(PrincipalKind.USER, "u-alpha", "alpha", AccountRole.OWNER, "owner")
    try:
        async with read_only(sessionmaker) as session:
            assert await NamespaceRepository(session, owner).view("late.alpha") is None
        async with unit_of_work(create_sessionmaker(engine)) as setup:
            setup.add(Account(id="alpha", name="alpha"))
            await setup.flush()
            setup.add(_namespace("late", "alpha"))
        async with read_only(sessionmaker) as session:
            row = await NamespaceRepository(session, owner).view("late.alpha")
            assert row is not None
            assert row.retention_days == 3
        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE namespaces RENAME TO namespaces_away"))
        with pytest.raises(exc.OperationalError, match="no such table: namespaces"):
            async with read_only(sessionmaker) as session:
                await NamespaceRepository(session, owner).view("late.alpha")
        async with engine.begin() as connection:
            await connection.execute(text("ALTER TABLE namespaces_away RENAME TO namespaces"))
        async with read_only(sessionmaker) as session:
            row = await NamespaceRepository(session, owner).view("late.alpha")
            assert row is not None
            assert row.id == "late.alpha"
    finally:
        await dispose_read_sessionmaker(sessionmaker)
        await engine.dispose()


def test_a_read_answers_after_the_database_dropped_every_connection(
    postgres: PostgresServer, migrated_postgres_template: str, tmp_path: Path
) -> None:
    name = postgres.unique_database("read_path", template=migrated_postgres_template)
    api = ApiAlone(
        tmp_path / "data", extra_env={"STRATUS_DATABASE_URL": postgres.database_url(name)}
    )
    api.start()
    try:
        key = api.new_tenant("Reader")
        with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as client:
            assert client.get("/api/v1/namespaces").status_code == 200
            missing = "/api/v1/namespaces/missing.nowhere"
            assert client.get(missing).status_code == 404
            with psycopg.connect(
                postgres.database_url("postgres").replace("+psycopg", "")
            ) as admin:
                dropped = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s",
                    (name,),
                ).fetchone()
            assert dropped is not None
            assert dropped[0] >= 1
            # At once (no idle ping yet): the read meets the dead connection and reads again,
            # on SQLAlchemy's pool and on the namespace read's own connections alike.
            assert client.get(missing).status_code == 404
            answer = client.get("/api/v1/namespaces")
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"namespaces": [], "next_page_token": ""}
    finally:
        api.stop()
        postgres.drop_database(name)
