"""``stratus bootstrap``: the first-start state of a production install (schema, secrets key,
operator key, gateway CA) without ``stratus up``; run again, it keeps what exists."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # `stratus bootstrap` processes, each migrating a database

STRATUS = str(Path(sys.executable).parent / "stratus")


def _bootstrap(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    env["STRATUS_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [STRATUS, "bootstrap"], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_bootstrap_writes_private_first_start_state_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "bootstrap"
    first = _bootstrap(data_dir)
    assert first.returncode == 0, first.stderr
    assert "database at " in first.stdout
    written = ["secrets.key", "operator.key", "pki/gateway-ca.pem", "pki/gateway-ca.key"]
    for name in written:
        assert f"wrote {data_dir / name}" in first.stdout
        assert stat.S_IMODE((data_dir / name).stat().st_mode) & 0o077 == 0 or name.endswith(
            ".pem"
        ), name
    for secret in ("secrets.key", "operator.key", "pki/gateway-ca.key"):
        assert stat.S_IMODE((data_dir / secret).stat().st_mode) == 0o600, secret
    before = {name: (data_dir / name).read_bytes() for name in written}

    again = _bootstrap(data_dir)
    assert again.returncode == 0, again.stderr
    assert {name: (data_dir / name).read_bytes() for name in written} == before
