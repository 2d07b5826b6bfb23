"""docs/examples/worker.py exits cleanly: it drops the SDK's runtime before the interpreter
finalizes. Left to the SDK's default runtime, about one run in eight aborted after printing its
result (exit 134 or 139, temporalio/sdk-python#300), so this runs it 20 times and counts."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import StratusUp

ROOT = Path(__file__).resolve().parent.parent
RUNS = 20
# The SDK's exit, 20 times: nothing here depends on the control plane's database (for cost).
pytestmark = pytest.mark.sqlite_only


def test_example_worker_exits_0_every_time(stratus: StratusUp, tmp_path: Path) -> None:
    """20 runs of the example worker against a real `stratus up`, over mTLS: every one prints
    the greeting and exits 0 (no signal, no abort at exit)."""
    created = stratus.cli(
        "-o", "json", "account", "create", "--name", "Exits", "--owner-email", "o@exits.example",
        api_key=stratus.operator_key,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    owner_key = json.loads(created.stdout)["owner_api_key"]["token"]
    certs = tmp_path / "certs"
    namespace = stratus.cli(
        "-o", "json", "namespace", "create", "--name", "exits", "--generate-certs",
        "--certs-dir", str(certs), "--wait",
        api_key=owner_key,
    )  # fmt: skip
    assert namespace.returncode == 0, namespace.stderr
    namespace_id = json.loads(namespace.stdout)["namespace"]["id"]

    command = [
        sys.executable, str(ROOT / "docs" / "examples" / "worker.py"), namespace_id,
        "--certs-dir", str(certs),
        "--gateway-ca", str(stratus.data_dir / "pki" / "gateway-ca.pem"),
        "--address", stratus.gateway_address,
    ]  # fmt: skip
    exits: collections.Counter[tuple[int, str]] = collections.Counter()
    failures = []
    for _ in range(RUNS):
        run = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
        )
        exits[(run.returncode, run.stdout.strip())] += 1
        if run.returncode != 0:
            failures.append(run.stderr[-2000:])
    assert exits == {(0, "Hello, Stratus!"): RUNS}, failures
