"""What Stratus writes under its data dir stays the operator's: every file it creates (database,
WAL and shared memory, logs, keys, the cells' state) is 0600 and every directory 0700, also
when an earlier version left them readable; and a database error never writes the statement's
values (emails, API-key hashes) to the logs."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import StratusUp, Tenant, free_port, http, new_tenant, wait_until

# About the SQLite file in the data dir (its mode, its lock): no PostgreSQL variant.
pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def stratus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratusUp]:
    """A Stratus on a data dir an earlier version left world-readable (0755, a 0644 log)."""
    data_dir = tmp_path_factory.mktemp("private") / "data"
    (data_dir / "logs").mkdir(parents=True)
    data_dir.chmod(0o755)
    (data_dir / "logs").chmod(0o755)
    old_log = data_dir / "logs" / "api.log"
    old_log.write_text("written by an earlier version\n")
    old_log.chmod(0o644)
    up = StratusUp(data_dir, free_port(), free_port())
    try:
        up.start()
        yield up
    finally:
        up.cleanup()


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "Private")


def _readable_by_others(root: Path) -> list[str]:
    exposed = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode) and mode & 0o077:
            exposed.append(f"{path.relative_to(root)}: {stat.filemode(mode)}")
    return exposed


def test_every_file_and_directory_stratus_created_is_private(
    stratus: StratusUp, tenant: Tenant
) -> None:
    """After start and a write (the WAL exists), nothing under the data dir is readable by
    group or others: the database and its WAL/SHM, logs, keys, PKI, the system cell's files."""
    with http(stratus, tenant.api_key) as client:
        invited = client.post(
            "/users", json={"email": "mode@private.example", "account_role": "developer"}
        )
        assert invited.status_code == 201, invited.text
    data_dir = stratus.data_dir
    for name in ("stratus.db", "stratus.db-wal", "stratus.db-shm", "operator.key", "secrets.key"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert any((data_dir / "cells").rglob("*")), "the system cell wrote its files"
    assert any((data_dir / "logs").iterdir())
    assert _readable_by_others(data_dir) == []


def test_a_database_error_logs_no_parameter_values(stratus: StratusUp, tenant: Tenant) -> None:
    """With the database locked by another writer, inviting a user fails in the database: the
    API's log shows the error and the statement, never the email nor the caller's key hash."""
    email = f"locked-{uuid.uuid4().hex[:8]}@private.example"
    key_hash = hashlib.sha256(tenant.api_key.encode()).hexdigest()
    api_log = stratus.data_dir / "logs" / "api.log"
    offset = api_log.stat().st_size
    blocker = sqlite3.connect(stratus.data_dir / "stratus.db", timeout=30)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with http(stratus, tenant.api_key) as client:
            response = client.post("/users", json={"email": email, "account_role": "developer"})
    finally:
        blocker.rollback()
        blocker.close()
    assert response.status_code >= 500, response.text

    def logged() -> str:
        return api_log.read_text(errors="replace")[offset:]

    # The server logs the traceback once the 500 is sent.
    wait_until(lambda: "database is locked" in logged())
    logged_text = logged()
    assert "SQL parameters hidden" in logged_text
    assert email not in logged_text
    assert key_hash not in logged_text
    assert email not in response.text
    assert os.stat(api_log).st_mode & 0o077 == 0
