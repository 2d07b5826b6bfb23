"""Read-only units of work (kit.db.read_only): they refuse to write, on SQLite and on
PostgreSQL, and a read survives the database dropping the API's pooled connections (what a
server restart does to them)."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text
from support import ApiAlone

from controlplane.kit.db import create_engine, create_read_sessionmaker, read_only
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
        await sessionmaker.kw["bind"].dispose()
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
            # At once (no idle ping yet): the read meets the dead connection and reads again.
            answer = client.get("/api/v1/namespaces")
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"namespaces": [], "next_page_token": ""}
    finally:
        api.stop()
        postgres.drop_database(name)
