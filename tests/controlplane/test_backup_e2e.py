"""``stratus backup`` copies a running Stratus's data dir (control-plane database, every cell's
Temporal database, keys, PKI); Stratus started on a copy of the backup has every namespace and
every workflow history of the moment of the backup, and nothing after it."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from support import (
    STRATUS,
    StratusUp,
    create_active_namespace,
    new_tenant,
    run_greeting,
    tls_for,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

# `stratus backup` copies the embedded default's SQLite files; on PostgreSQL it says to use
# pg_dump and copies the rest (test_backup_on_postgresql_copies_the_rest_and_says_so).
pytestmark = pytest.mark.sqlite_only


async def test_backup_of_a_running_stratus_restores_namespaces_and_histories(
    fresh_stratus: StratusUp, tmp_path: Path
) -> None:
    fresh_stratus.start()
    tenant = new_tenant(fresh_stratus, "Backedup")
    namespace_id = create_active_namespace(fresh_stratus, tenant, "ledger")
    assert await run_greeting(fresh_stratus, namespace_id, tenant.client_cert, "before") == (
        "Hello, Stratus!"
    )

    backup = tmp_path / "backup"
    taken = fresh_stratus.cli("backup", str(backup), "--data-dir", str(fresh_stratus.data_dir))
    assert taken.returncode == 0, taken.stderr
    assert f"to {backup}" in taken.stdout

    manifest = json.loads((backup / "backup.json").read_text())
    cell = f"cell-{tenant.account_id}"
    for expected in (
        "stratus.db",
        "cells/system/temporal.db",
        f"cells/{cell}/temporal.db",
        f"cells/{cell}/cell.json",
        "secrets.key",
        "operator.key",
        "pki/gateway-ca.pem",
        "pki/gateway-ca.key",
    ):
        assert expected in manifest["files"], expected
        assert stat.S_IMODE((backup / expected).stat().st_mode) == 0o600, expected
    assert "pid" not in json.loads((backup / "cells" / cell / "cell.json").read_text())
    assert not list(backup.rglob("*.log")), "logs are not part of a backup"

    # After the backup: not in it.
    assert await run_greeting(fresh_stratus, namespace_id, tenant.client_cert, "after") == (
        "Hello, Stratus!"
    )
    assert fresh_stratus.stop() == 0

    restored = StratusUp(
        tmp_path / "restored",
        fresh_stratus.api_port,
        fresh_stratus.gateway_port,
        gateway_api_key_port=fresh_stratus.gateway_api_key_port,
    )
    shutil.copytree(backup, restored.data_dir)
    try:
        restored.start()
        with tenant.client(restored) as api:
            assert api.get_namespace(namespace_id).state == "ACTIVE"
        client = await Client.connect(
            restored.gateway_address,
            namespace=namespace_id,
            tls=tls_for(restored, tenant.client_cert, namespace_id),
        )
        handle = client.get_workflow_handle("before")
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        assert await handle.result() == "Hello, Stratus!"
        with pytest.raises(RPCError) as missing:
            await client.get_workflow_handle("after").describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND
        assert await run_greeting(restored, namespace_id, tenant.client_cert, "restored") == (
            "Hello, Stratus!"
        )
    finally:
        restored.cleanup()


def test_backup_refuses_a_non_empty_destination_and_one_inside_the_data_dir(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "secrets.key").write_bytes(b"k")
    up = StratusUp(data_dir, 0, 0)

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "something").write_text("x")
    refused = up.cli("backup", str(occupied), "--data-dir", str(data_dir))
    assert refused.returncode == 2
    assert f"error: {occupied} exists and is not an empty directory" in refused.stderr

    inside = up.cli("backup", str(data_dir / "backups"), "--data-dir", str(data_dir))
    assert inside.returncode == 2
    assert "error: the backup must be written outside the data dir" in inside.stderr

    not_a_data_dir = up.cli("backup", str(tmp_path / "b"), "--data-dir", str(occupied))
    assert not_a_data_dir.returncode == 2
    assert "is not a Stratus data dir" in not_a_data_dir.stderr
    assert not (tmp_path / "b").exists()


def test_backup_on_postgresql_copies_the_rest_and_says_so(tmp_path: Path) -> None:
    """With STRATUS_DATABASE_URL on PostgreSQL the database is not copied (pg_dump is the
    operator's tool): the backup says so, on stdout and in backup.json, and copies the keys."""
    data_dir = tmp_path / "data"
    (data_dir / "pki").mkdir(parents=True)
    (data_dir / "secrets.key").write_bytes(b"k" * 64)
    (data_dir / "pki" / "gateway-ca.pem").write_text("ca")
    up = StratusUp(data_dir, 0, 0)
    env = up.env() | {"STRATUS_DATABASE_URL": "postgresql+psycopg://stratus@db.invalid/stratus"}
    taken = subprocess.run(
        [STRATUS, "backup", str(tmp_path / "b"), "--data-dir", str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert taken.returncode == 0, taken.stderr
    assert "note: the control-plane database is not SQLite: back it up with pg_dump" in (
        taken.stdout
    )
    manifest = json.loads((tmp_path / "b" / "backup.json").read_text())
    assert manifest["database"] == "postgresql"
    assert sorted(manifest["files"]) == ["pki/gateway-ca.pem", "secrets.key"]
