"""Fair provisioning: how long account B's namespace create takes, alone and while account A
has a backlog of concurrent creates.

Run: ``.venv/bin/python bench/fair_provisioning.py [--backlog 30] [--rounds 3] [--code DIR]``.
Starts its own ``stratus up`` (the code under ``--code``, default this checkout, so an older
checkout can be measured with the same script) in a temp dir on free 127.0.0.1 ports, and prints
one JSON document:

- ``unloaded_s``: B's create → ACTIVE latencies with nothing else running (B's and A's cells
  already started by a first namespace each);
- ``loaded_s``: B's latency when it is sent right after A fired ``--backlog`` creates at once;
- ``a_accepted`` / ``a_refused``: how many of A's creates were accepted / refused (statuses);
- ``b_before_a_last``: per round, whether B was ACTIVE before A's last accepted create was;
- ``a_backlog_drain_s``: per round, how long A's accepted creates took to all end.

Only HTTP against the API is used (no imports of the measured code), so the same script runs
against any version of the API.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from auth import generate_ca  # noqa: E402  (self-contained, stable across versions)

STRATUS = str(Path(sys.executable).parent / "stratus")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Up:
    def __init__(self, code: Path, data_dir: Path) -> None:
        self.code = code
        self.data_dir = data_dir
        self.api_port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
        env["PYTHONPATH"] = str(self.code)
        env["STRATUS_RECONCILE_INTERVAL_SECONDS"] = "1"
        log = open(self.data_dir / "up.log", "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(
            [
                STRATUS, "up", "--data-dir", str(self.data_dir),
                "--api-port", str(self.api_port),
                "--gateway-port", str(_free_port()),
                "--gateway-api-key-port", str(_free_port()),
            ],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True, cwd=self.code,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 180
        while "Stratus is up." not in (self.data_dir / "up.log").read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.data_dir / "up.log").read_text()[-3000:])
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
        for record in (self.data_dir / "cells").glob("*/cell.json"):
            pid = json.loads(record.read_text()).get("pid")
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class Tenant:
    def __init__(self, up: Up, name: str, operator_key: str) -> None:
        with httpx.Client(
            base_url=up.api, headers={"Authorization": f"Bearer {operator_key}"}, timeout=60
        ) as operator:
            created = operator.post(
                "/accounts", json={"name": name, "owner_email": f"owner@{name}.example"}
            )
            created.raise_for_status()
        body = created.json()
        self.account_id: str = body["account"]["id"]
        self.http = httpx.Client(
            base_url=up.api,
            headers={"Authorization": f"Bearer {body['owner_api_key']['token']}"},
            timeout=120,
        )
        self.ca = generate_ca(f"{name} CA").cert_pem.decode()

    def create(self, name: str) -> tuple[int, str | None]:
        response = self.http.post(
            "/namespaces",
            json={"name": name, "accepted_client_ca": self.ca, "retention_days": 1},
        )
        if response.status_code != 202:
            return response.status_code, None
        return 202, str(response.json()["async_operation"]["id"])

    def wait(self, operation_id: str, timeout: float = 600) -> float:
        """Wait for the operation to end; returns the monotonic time it was seen ending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.http.get(f"/operations/{operation_id}").json()["state"]
            if state == "FULFILLED":
                return time.monotonic()
            if state == "FAILED":
                raise RuntimeError(f"operation {operation_id} failed")
            time.sleep(0.1)
        raise TimeoutError(operation_id)

    def timed_create(self, name: str) -> float:
        started = time.monotonic()
        status, operation = self.create(name)
        if operation is None:
            raise RuntimeError(f"create {name}: {status}")
        return self.wait(operation) - started


def run(code: Path, backlog: int, rounds: int, keep: Path | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stratus-fair-") as tmp_dir:
        tmp = str(keep) if keep is not None else tmp_dir
        up = Up(code, Path(tmp))
        up.start()
        try:
            operator_key = (Path(tmp) / "operator.key").read_text().strip()
            a, b = Tenant(up, "noisy", operator_key), Tenant(up, "quiet", operator_key)
            quota = httpx.post(
                f"{up.api}/accounts/{a.account_id}/quotas",
                headers={"Authorization": f"Bearer {operator_key}"},
                json={"namespaces": 1000},
                timeout=30,
            )
            # Warm: each account's cell is started by its first namespace.
            a.timed_create("warm")
            b.timed_create("warm")
            unloaded = [b.timed_create(f"alone{i}") for i in range(rounds)]
            loaded: list[float] = []
            before: list[bool] = []
            drains: list[float] = []
            accepted: list[int] = []
            refused: list[list[int]] = []
            for i in range(rounds):
                with ThreadPoolExecutor(max_workers=backlog) as pool:
                    fired = time.monotonic()
                    results = list(pool.map(a.create, [f"r{i}n{j}" for j in range(backlog)]))
                    b_started = time.monotonic()
                    b_future = pool.submit(b.timed_create, f"busy{i}")
                    ops = [op for _, op in results if op is not None]
                    ends = list(pool.map(a.wait, ops))
                    b_latency = b_future.result()
                loaded.append(b_latency)
                before.append(b_started + b_latency < max(ends) if ends else True)
                drains.append(max(ends) - fired if ends else 0.0)
                accepted.append(len(ops))
                refused.append(sorted({status for status, op in results if op is None}))
            return {
                "code": str(code),
                "backlog_fired": backlog,
                "quotas_api": quota.status_code,
                "a_accepted": accepted,
                "a_refused_statuses": refused,
                "unloaded_s": [round(x, 2) for x in unloaded],
                "loaded_s": [round(x, 2) for x in loaded],
                "unloaded_median_s": round(statistics.median(unloaded), 2),
                "loaded_median_s": round(statistics.median(loaded), 2),
                "b_before_a_last": before,
                "a_backlog_drain_s": [round(x, 2) for x in drains],
            }
        finally:
            up.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backlog", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--code", type=Path, default=ROOT)
    parser.add_argument("--keep", type=Path, help="data dir to use and keep (to inspect it)")
    args = parser.parse_args()
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    result = run(args.code.resolve(), args.backlog, args.rounds, args.keep)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
