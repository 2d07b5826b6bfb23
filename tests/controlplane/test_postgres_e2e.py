"""`stratus up` on PostgreSQL (STRATUS_DATABASE_URL=postgresql+psycopg://...): the whole path
of a new tenant, from account to a workflow run through the gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import StratusUp, create_active_namespace, free_port, new_tenant, run_greeting

from infra.postgres import PostgresServer


@pytest.fixture
def stratus_on_postgres(postgres: PostgresServer, tmp_path: Path) -> Iterator[StratusUp]:
    """A `stratus up` whose control plane keeps its state in a new PostgreSQL database."""
    name = postgres.unique_database("stratus_up")
    up = StratusUp(
        tmp_path / "data",
        free_port(),
        free_port(),
        extra_env={"STRATUS_DATABASE_URL": postgres.database_url(name)},
    )
    try:
        up.start()
        yield up
    finally:
        up.cleanup()
        postgres.drop_database(name)


@pytest.mark.slow
async def test_account_namespace_and_workflow_on_postgres(stratus_on_postgres: StratusUp) -> None:
    """On PostgreSQL the operator creates an account, its namespace becomes ACTIVE, a worker
    runs a workflow through the gateway; no SQLite database is created beside it, and no
    process logged a traceback."""
    stratus = stratus_on_postgres
    tenant = new_tenant(stratus, "Pgco")
    namespace_id = create_active_namespace(stratus, tenant, "orders")
    result = await run_greeting(stratus, namespace_id, tenant.client_cert, "pg-first-workflow")
    assert result == "Hello, Stratus!"
    assert not (stratus.data_dir / "stratus.db").exists()
    for log in stratus.data_dir.rglob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log
