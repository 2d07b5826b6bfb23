"""One API process answering ``GET /api/v1/namespaces/{id}`` on SQLite and on PostgreSQL:
p50/p99 one request at a time, requests per second with ``--clients`` concurrent clients, and
the API's CPU time per request.

Run: ``.venv/bin/python bench/api_read.py [--database sqlite|postgresql|both]
[--baseline /work/main]``. Starts the API alone (``python -m controlplane.app`` on a
bootstrapped temp data dir, no worker, gateway or cells) on a fresh database (PostgreSQL: a
private server from ``infra/postgres.py``, one database per checkout), creates an account
through the API, stores one namespace row directly (nothing acts on it), then measures over
loopback with a minimal keep-alive HTTP/1.1 client on asyncio streams. ``--baseline PATH``
measures the checkout at PATH the same way in the same run (first; ``--this-first`` swaps
the order), so the figures sit side by side.
Prints one JSON document; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx
from support import ApiAlone

from infra.postgres import PostgresServer, run_postgres

_SEED = """
import sys, uuid
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from controlplane.models import Namespace
from controlplane.states import NamespaceState
engine = create_engine(sys.argv[1])
with Session(engine) as session, session.begin():
    session.add(Namespace(
        id="bench." + sys.argv[2], account_id=sys.argv[2], name="bench", retention_days=7,
        accepted_client_ca="", state=NamespaceState.ACTIVE, resource_version=str(uuid.uuid4()),
    ))
"""


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
    }


class Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams: a client far cheaper than
    httpx, so that on a small machine the API, not the client, is what is measured."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def exchange(self, request: bytes) -> int:
        """Send one request (bytes on the wire), read the answer; its status."""
        self.writer.write(request)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    pid: int, port: int, key: str, path: str, *, requests: int, clients: int, seconds: float
) -> Any:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n"
    ).encode()
    connections = [await Connection.open(port) for _ in range(clients)]
    try:
        first = connections[0]
        for _ in range(100):  # warm up
            assert await first.exchange(request) == 200
        sequential = []
        for _ in range(requests):
            started = time.perf_counter()
            assert await first.exchange(request) == 200
            sequential.append(time.perf_counter() - started)
        done = 0
        errors = 0
        deadline = time.monotonic() + seconds

        async def client(connection: Connection) -> None:
            nonlocal done, errors
            while time.monotonic() < deadline:
                status = await connection.exchange(request)
                done += 1
                errors += status != 200

        started = time.perf_counter()
        cpu_started = cpu_seconds(pid)
        await asyncio.gather(*(client(connection) for connection in connections))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_started
    finally:
        for connection in connections:
            connection.close()
    return {
        "sequential": {"requests": requests, **percentiles(sequential)},
        "concurrent": {
            "clients": clients,
            "requests": done,
            "errors": errors,
            "requests_per_second": round(done / elapsed, 1),
            # What the API process spent per request: steadier than the rates on a shared
            # machine, where the client and other processes take CPU from it.
            "api_cpu_ms_per_request": round(cpu / max(done, 1) * 1000, 3),
        },
    }


def run(checkout: Path, args: argparse.Namespace, postgres: PostgresServer | None) -> Any:
    # The working directory too: ``python -m``/``-c`` put it first on sys.path, ahead of
    # PYTHONPATH (from another directory, a "baseline" would run this checkout's code).
    with (
        contextlib.chdir(checkout),
        tempfile.TemporaryDirectory(prefix="stratus-api-read-") as tmp,
    ):
        data_dir = Path(tmp) / "data"
        extra_env = {"PYTHONPATH": str(checkout)}
        database_name = None
        if postgres is None:
            sync_url = f"sqlite:///{data_dir / 'stratus.db'}"
        else:
            database_name = postgres.unique_database("api_read")
            extra_env["STRATUS_DATABASE_URL"] = sync_url = postgres.database_url(
                database_name, unix_socket=args.unix_socket
            )
        api = ApiAlone(data_dir, extra_env=extra_env)
        api.start()
        try:
            key = api.new_tenant("Bench")
            with httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"}) as h:
                account_id = h.get("/api/v1/current-identity").json()["account_id"]
            env = {**os.environ, "PYTHONPATH": str(checkout)}
            subprocess.run(
                [sys.executable, "-c", _SEED, sync_url, account_id],
                env=env,
                check=True,
                timeout=60,
            )
            path = f"/api/v1/namespaces/bench.{account_id}"
            assert api.process is not None
            return asyncio.run(
                measure(
                    api.process.pid,
                    api.port,
                    key,
                    path,
                    requests=args.requests,
                    clients=args.clients,
                    seconds=args.seconds,
                )
            )
        finally:
            api.stop()
            if postgres is not None and database_name is not None:
                postgres.drop_database(database_name)


@contextmanager
def database_server(database: str) -> Iterator[PostgresServer | None]:
    if database == "sqlite":
        yield None
        return
    with run_postgres() as server:
        yield server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000, help="sequential requests")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="concurrent phase")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured first")
    parser.add_argument(
        "--this-first",
        action="store_true",
        help="measure this checkout before the baseline (run both orders to see the noise)",
    )
    parser.add_argument(
        "--unix-socket",
        action="store_true",
        help="PostgreSQL over its Unix socket instead of TCP loopback (libpq host=<dir>)",
    )
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql", "both"], default="both", help="where"
    )
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    databases = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    result: dict[str, Any] = {}
    for database in databases:
        with database_server(database) as postgres:
            checkouts = [("this", here)]
            if args.baseline is not None:
                baseline = ("baseline", args.baseline)
                checkouts = [*checkouts, baseline] if args.this_first else [baseline, *checkouts]
            figures: dict[str, Any] = {"order": [name for name, _ in checkouts]}
            for name, checkout in checkouts:
                figures[name] = {"checkout": str(checkout), **run(checkout, args, postgres)}
        result[database] = figures
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
