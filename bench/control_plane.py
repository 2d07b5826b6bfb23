"""The control plane at scale on SQLite: API reads and account creation with 1,000 accounts
and 10,000 namespaces stored, one API process vs two on the same database.

Run: ``.venv/bin/python bench/control_plane.py [--accounts 1000 --namespaces-per-account 10]``.
Starts the API alone (``python -m controlplane.app``, no worker, gateway or cells) on a temp
data dir, creates one account through the API (its owner key makes the reads), then stores the
other accounts and every namespace directly through the ORM (nothing acts on them: seeding
through cells would take hours). Measures over loopback with ``api_read.Connection``:

- GET one namespace and LIST the owner's namespaces, one request at a time (p50/p99);
- GET at ``--clients`` concurrent clients (req/s), spread over the API processes;
- account creation (``POST /api/v1/accounts``, operator) at ``--clients`` (accounts/s).

then starts a second API process on the same database and measures the concurrent parts
again. Namespace creation is not measured: it starts a workflow on the system cell, which this
bench does not run. Route propagation to gateways is not measured yet. Prints one JSON
document; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from api_read import Connection, percentiles
from support import ApiAlone

_SEED = """
import sys, uuid, datetime as dt
from sqlalchemy import create_engine, insert
from controlplane.models import Account, Namespace
from controlplane.states import NamespaceState
database, owner_account = sys.argv[1], sys.argv[2]
accounts, per_account = int(sys.argv[3]), int(sys.argv[4])
now = dt.datetime.now(dt.UTC)
engine = create_engine("sqlite:///" + database)
account_ids = [owner_account] + [f"b{i:07d}" for i in range(accounts - 1)]
with engine.begin() as connection:
    connection.execute(insert(Account), [
        {"id": a, "name": f"bench {a}", "created_at": now, "updated_at": now}
        for a in account_ids[1:]
    ])
    connection.execute(insert(Namespace), [
        {"id": f"ns{n}.{a}", "account_id": a, "name": f"ns{n}", "retention_days": 7,
         "accepted_client_ca": "", "certificate_filters": [], "state": NamespaceState.ACTIVE,
         "resource_version": str(uuid.uuid4()), "created_at": now, "updated_at": now}
        for a in account_ids for n in range(per_account)
    ])
"""


def request(method: str, path: str, key: str, body: dict[str, Any] | None = None) -> bytes:
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


async def sequential(port: int, wire: bytes, requests: int) -> dict[str, float]:
    connection = await Connection.open(port)
    try:
        for _ in range(20):
            assert await connection.exchange(wire) == 200
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            assert await connection.exchange(wire) == 200
            samples.append(time.perf_counter() - started)
    finally:
        connection.close()
    return {"requests": requests, **percentiles(samples)}


async def concurrent(
    ports: list[int], make: Any, *, clients: int, seconds: float, ok: int
) -> dict[str, Any]:
    connections = [await Connection.open(ports[i % len(ports)]) for i in range(clients)]
    done = errors = 0
    deadline = time.monotonic() + seconds

    async def client(connection: Connection) -> None:
        nonlocal done, errors
        while time.monotonic() < deadline:
            status = await connection.exchange(make())
            done += 1
            errors += status != ok

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(connection) for connection in connections))
    finally:
        for connection in connections:
            connection.close()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "api_processes": len(ports),
        "requests": done,
        "errors": errors,
        "per_second": round(done / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--namespaces-per-account", type=int, default=10)
    parser.add_argument("--requests", type=int, default=500, help="sequential requests")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="each concurrent phase")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "accounts": args.accounts,
        "namespaces": args.accounts * args.namespaces_per_account,
    }
    with tempfile.TemporaryDirectory(prefix="stratus-control-plane-") as tmp:
        first = ApiAlone(Path(tmp) / "data")
        second = ApiAlone(Path(tmp) / "data")
        first.start()
        try:
            key = first.new_tenant("Bench")
            with httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {key}"}) as h:
                account_id = h.get("/api/v1/current-identity").json()["account_id"]
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _SEED,
                    str(first.data_dir / "stratus.db"),
                    account_id,
                    str(args.accounts),
                    str(args.namespaces_per_account),
                ],
                check=True,
                timeout=600,
            )
            result["seed_seconds"] = round(time.perf_counter() - started, 1)
            get = request("GET", f"/api/v1/namespaces/ns0.{account_id}", key)
            listing = request("GET", "/api/v1/namespaces", key)
            operator = first.operator_key

            def create() -> bytes:
                name = f"c{uuid.uuid4().hex[:12]}"
                body = {"name": name, "owner_email": f"owner@{name}.example"}
                return request("POST", "/api/v1/accounts", operator, body)

            async def phases(ports: list[int]) -> dict[str, Any]:
                measured: dict[str, Any] = {}
                if len(ports) == 1:
                    measured["get_namespace"] = await sequential(ports[0], get, args.requests)
                    measured["list_namespaces"] = await sequential(ports[0], listing, args.requests)
                measured["get_namespace_concurrent"] = await concurrent(
                    ports, lambda: get, clients=args.clients, seconds=args.seconds, ok=200
                )
                measured["create_account_concurrent"] = await concurrent(
                    ports, create, clients=args.clients, seconds=args.seconds, ok=201
                )
                return measured

            result["one_api_process"] = asyncio.run(phases([first.port]))
            second.start()
            result["two_api_processes"] = asyncio.run(phases([first.port, second.port]))
        finally:
            second.stop()
            first.stop()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
