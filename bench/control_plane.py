"""The control plane at scale, on SQLite and on PostgreSQL, one API process vs two: API reads
and account creation with 1,000 accounts and 10,000 namespaces stored, namespace creation
through the whole stack, and route propagation to 1, 2 and 4 gateways.

Run: ``.venv/bin/python bench/control_plane.py [--database sqlite|postgresql|both]``
(PostgreSQL: a private server from Debian's package, ``infra/postgres.py``, one new database
per phase). Prints one JSON document, one section per database; never fails on a time.

``reads`` (per database): the API alone (``python -m controlplane.app``, no worker, gateway or
cells) on a fresh data dir; one account is created through the API (its owner key makes the
reads), the other accounts and every namespace are stored directly through the ORM (nothing
acts on them: seeding through cells would take hours). Measured over loopback with
``api_read.Connection``: GET one namespace and LIST the owner's namespaces one request at a
time (p50/p99, one API process); GET at ``--clients`` concurrent clients (req/s) and account
creation (``POST /api/v1/accounts``, operator, at ``--clients``) on one API process, then on
two on the same database (clients spread over both).

``creates``: a whole ``stratus up`` (system cell, worker, gateway, a local cell per account)
plus a second API process on the same database. ``--create-accounts`` new accounts (each gets
its own local cell: that start is part of what is measured) with their namespace and
concurrent-operation quotas raised, ``--creates-per-account`` namespaces each, all posted at
once by ``--clients`` concurrent clients, first through one API then (other accounts) through
both: creates accepted per second (202 answers) and completed to ACTIVE per second (first POST
to the last namespace ACTIVE; ACTIVE means every registered gateway serves it).

``propagation``: on that same stack, with 1, then 2, then 4 gateways (the extra ones started
as the supervisor starts its own, each with its own id): ``--propagation-namespaces``
namespaces created one after another on an account whose cell runs; for each, the time
from publish (the route row's ``updated_at``, written in the publishing transaction) and
from the API's 202 until EVERY gateway serves it: an mTLS handshake with the namespace's
server name and the tenant's client certificate succeeds (what an SDK worker does first),
each gateway probed every ``--probe-ms`` ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import sqlalchemy
from api_read import Connection, percentiles
from support import ApiAlone, StratusUp, Tenant, free_port, new_tenant, server_name

from auth import KeyPair
from infra.postgres import PostgresServer, run_postgres
from infra.probes import SERVING, api_alive, gateway_health

_SEED = """
import sys, uuid, datetime as dt
from sqlalchemy import create_engine, insert
from controlplane.models import Account, Namespace
from controlplane.states import NamespaceState
url, owner_account = sys.argv[1], sys.argv[2]
accounts, per_account = int(sys.argv[3]), int(sys.argv[4])
now = dt.datetime.now(dt.UTC)
engine = create_engine(url.replace("+aiosqlite", ""))
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
    error_statuses: dict[str, int] = {}
    deadline = time.monotonic() + seconds

    async def client(connection: Connection) -> None:
        nonlocal done, errors
        while time.monotonic() < deadline:
            status = await connection.exchange(make())
            done += 1
            if status != ok:
                errors += 1
                error_statuses[str(status)] = error_statuses.get(str(status), 0) + 1

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
        "error_statuses": error_statuses,
        "per_second": round(done / elapsed, 1),
    }


@contextlib.contextmanager
def database(kind: str, postgres: PostgresServer | None) -> Iterator[dict[str, str]]:
    """The settings naming a new database: none (SQLite in the data dir) or a new PostgreSQL
    database, dropped afterwards."""
    if kind == "sqlite":
        yield {}
        return
    assert postgres is not None
    name = postgres.unique_database("stratus_bench")
    try:
        yield {"STRATUS_DATABASE_URL": postgres.database_url(name)}
    finally:
        postgres.drop_database(name)


def reads(args: argparse.Namespace, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {
        "accounts": args.accounts,
        "namespaces": args.accounts * args.namespaces_per_account,
    }
    first = ApiAlone(tmp / "data", extra_env=env)
    second = ApiAlone(tmp / "data", extra_env=env)
    first.start()
    try:
        key = first.new_tenant("Bench")
        with httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {key}"}) as h:
            account_id = h.get("/api/v1/current-identity").json()["account_id"]
        url = env.get("STRATUS_DATABASE_URL", f"sqlite:///{first.data_dir / 'stratus.db'}")
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-c",
                _SEED,
                url,
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
    return result


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


@dataclass
class Stack:
    """``stratus up`` plus the processes the bench adds beside it (APIs, gateways)."""

    up: StratusUp
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api_ports: list[int] = field(default_factory=list)
    gateway_ports: list[int] = field(default_factory=list)

    def _start(self, module: str, env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
        with open(self.up.data_dir / "logs" / log, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def add_api(self) -> None:
        port = free_port()
        pid = int((self.up.data_dir / "run" / "api.pid").read_text())
        process = self._start(
            "controlplane.app",
            _environ(pid) | {"STRATUS_API_PORT": str(port)},
            f"api-{len(self.api_ports) + 1}.log",
        )
        url = f"http://127.0.0.1:{port}"
        _wait(lambda: api_alive(url, process), 60, "the extra API")
        self.api_ports.append(port)

    def add_gateway(self) -> None:
        port, key_port = free_port(), free_port()
        number = len(self.gateway_ports) + 1
        pid = int((self.up.data_dir / "run" / "gateway.pid").read_text())
        self._start(
            "dataplane.gateway",
            _environ(pid)
            | {
                "STRATUS_GATEWAY_ID": f"bench-gateway-{number}",
                "STRATUS_GATEWAY_PORT": str(port),
                "STRATUS_GATEWAY_API_KEY_PORT": str(key_port),
                "STRATUS_GATEWAY_METRICS_PORT": "0",
            },
            f"gateway-{number}.log",
        )
        _wait(lambda: gateway_health(key_port, self.up.gateway_ca) == SERVING, 60, "gateway")
        self.gateway_ports.append(port)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.up.cleanup()


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready")
        time.sleep(0.1)


def _raise_namespace_quota(up: StratusUp, account_id: str, namespaces: int) -> None:
    with httpx.Client(
        base_url=up.api_url, headers={"Authorization": f"Bearer {up.operator_key}"}
    ) as operator:
        answer = operator.post(
            f"/api/v1/accounts/{account_id}/quotas",
            json={"namespaces": namespaces, "concurrent_operations": namespaces},
        )
        answer.raise_for_status()


async def _post_creates(
    ports: list[int], tenants: list[Tenant], per_account: int, clients: int
) -> tuple[list[float], float]:
    """Every create at once (``clients`` at a time); returns each answer's time."""
    jobs = [(t, f"n{i:03d}") for t in tenants for i in range(per_account)]
    answered: list[float] = []
    queue: asyncio.Queue[tuple[Tenant, str]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def client(index: int) -> None:
        base = f"http://127.0.0.1:{ports[index % len(ports)]}/api/v1"
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            while not queue.empty():
                tenant, name = queue.get_nowait()
                answer = await http.post(
                    "/namespaces",
                    headers={"Authorization": f"Bearer {tenant.api_key}"},
                    json={
                        "name": name,
                        "accepted_client_ca": tenant.ca.cert_pem.decode(),
                        "retention_days": 7,
                    },
                )
                assert answer.status_code == 202, answer.text
                answered.append(time.perf_counter())

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(min(clients, len(jobs)))))
    return answered, started


def creates(stack: Stack, ports: list[int], args: argparse.Namespace, label: str) -> dict[str, Any]:
    up = stack.up
    tenants = [new_tenant(up, f"Create{label}{i}") for i in range(args.create_accounts)]
    for tenant in tenants:
        _raise_namespace_quota(up, tenant.account_id, args.creates_per_account + 1)
    answered, started = asyncio.run(
        _post_creates(ports, tenants, args.creates_per_account, args.clients)
    )
    accepted_seconds = max(answered) - started
    total = len(answered)
    pending = {tenant.account_id: tenant for tenant in tenants}
    failed = 0
    while pending:
        for account_id, tenant in list(pending.items()):
            with httpx.Client(
                base_url=up.api_url, headers={"Authorization": f"Bearer {tenant.api_key}"}
            ) as http:
                listed = http.get("/api/v1/namespaces").json()
            states = [n["state"] for n in listed["namespaces"]]
            if len(states) == args.creates_per_account and all(
                state in ("ACTIVE", "FAILED") for state in states
            ):
                failed += states.count("FAILED")
                del pending[account_id]
        if time.perf_counter() - started > args.create_timeout:
            raise TimeoutError(f"creates not complete after {args.create_timeout} s")
        time.sleep(0.2)
    completed_seconds = time.perf_counter() - started
    return {
        "api_processes": len(ports),
        "accounts": len(tenants),
        "namespaces": total,
        "failed": failed,
        "accepted_per_second": round(total / accepted_seconds, 1),
        "accepted_seconds": round(accepted_seconds, 2),
        "active_per_second": round(total / completed_seconds, 2),
        "active_seconds": round(completed_seconds, 1),
    }


def _client_tls(up: StratusUp, cert: KeyPair, tmp: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=up.gateway_ca.decode())
    cert_path, key_path = tmp / "client.pem", tmp / "client.key"
    cert_path.write_bytes(cert.cert_pem)
    key_path.write_bytes(cert.key_pem)
    context.load_cert_chain(cert_path, key_path)
    context.set_alpn_protocols(["h2"])
    return context


def _serves(port: int, context: ssl.SSLContext, sni: str) -> bool:
    """Whether a worker could connect now: the mTLS handshake with the namespace's name."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
            context.wrap_socket(raw, server_hostname=sni) as tls,
        ):
            tls.do_handshake()
            return True
    except (ssl.SSLError, OSError):
        return False


def _published_at(url: str, namespace_id: str) -> float:
    engine = sqlalchemy.create_engine(url.replace("+aiosqlite", ""))
    try:
        with engine.connect() as connection:
            stamp: dt.datetime | str = connection.execute(
                sqlalchemy.text("SELECT updated_at FROM gateway_routes WHERE namespace_id = :n"),
                {"n": namespace_id},
            ).scalar_one()
    finally:
        engine.dispose()
    if isinstance(stamp, str):  # SQLite hands a raw query's timestamp back as text
        stamp = dt.datetime.fromisoformat(stamp)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def propagation(
    stack: Stack, tenant: Tenant, url: str, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    up = stack.up
    context = _client_tls(up, tenant.client_cert, tmp)
    from_publish: list[float] = []
    from_answer: list[float] = []
    probe = args.probe_ms / 1000
    with httpx.Client(
        base_url=up.api_url + "/api/v1",
        headers={"Authorization": f"Bearer {tenant.api_key}"},
        timeout=60,
    ) as http:
        for _ in range(args.propagation_namespaces):
            name = f"p{uuid.uuid4().hex[:10]}"
            answer = http.post(
                "/namespaces",
                json={
                    "name": name,
                    "accepted_client_ca": tenant.ca.cert_pem.decode(),
                    "retention_days": 7,
                },
            )
            assert answer.status_code == 202, answer.text
            answered = time.time()
            namespace_id = answer.json()["namespace"]["id"]
            sni = server_name(namespace_id)
            serving: dict[int, float] = {}
            deadline = time.monotonic() + 120
            while len(serving) < len(stack.gateway_ports):
                for port in stack.gateway_ports:
                    if port not in serving and _serves(port, context, sni):
                        serving[port] = time.time()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{namespace_id} not served by every gateway")
                time.sleep(probe)
            everywhere = max(serving.values())
            from_publish.append(everywhere - _published_at(url, namespace_id))
            from_answer.append(everywhere - answered)
    return {
        "gateways": len(stack.gateway_ports),
        "namespaces": len(from_publish),
        "probe_ms": args.probe_ms,
        "from_publish": percentiles(from_publish),
        "from_api_answer": percentiles(from_answer),
    }


def whole_stack(args: argparse.Namespace, env: dict[str, str], tmp: Path) -> dict[str, Any]:
    result: dict[str, Any] = {}
    up = StratusUp(tmp / "up", free_port(), free_port(), extra_env=env)
    stack = Stack(up)
    try:
        up.start(timeout=300)
        stack.api_ports.append(up.api_port)
        stack.gateway_ports.append(up.gateway_port)
        stack.add_api()
        if "creates" in args.phases:
            result["one_api_process"] = _progress(creates(stack, stack.api_ports[:1], args, "one"))
            result["two_api_processes"] = _progress(creates(stack, stack.api_ports, args, "two"))
        if "propagation" in args.phases:
            url = env.get("STRATUS_DATABASE_URL", f"sqlite:///{up.data_dir / 'stratus.db'}")
            tenant = new_tenant(up, "Propagation")
            _raise_namespace_quota(up, tenant.account_id, 3 * args.propagation_namespaces + 2)
            with httpx.Client(
                base_url=up.api_url + "/api/v1",
                headers={"Authorization": f"Bearer {tenant.api_key}"},
                timeout=60,
            ) as http:
                # Its first namespace starts its cell: propagation is measured after that.
                first = http.post(
                    "/namespaces",
                    json={"name": "warm", "accepted_client_ca": tenant.ca.cert_pem.decode()},
                )
                assert first.status_code == 202, first.text
                namespace_id = first.json()["namespace"]["id"]
                _wait(
                    lambda: http.get(f"/namespaces/{namespace_id}").json()["state"] == "ACTIVE",
                    300,
                    "the propagation account's cell",
                )
            measured = []
            for gateways in (1, 2, 4):
                while len(stack.gateway_ports) < gateways:
                    stack.add_gateway()
                measured.append(_progress(propagation(stack, tenant, url, args, tmp)))
            result["route_propagation"] = measured
    finally:
        stack.stop()
    return result


def _progress(measured: dict[str, Any]) -> dict[str, Any]:
    """Each phase's figures on stderr as soon as they exist (a long run keeps what it got)."""
    print(json.dumps(measured), file=sys.stderr, flush=True)
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--phases", default="reads,creates,propagation", help="comma-separated subset"
    )
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--namespaces-per-account", type=int, default=10)
    parser.add_argument("--requests", type=int, default=500, help="sequential requests")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="each concurrent phase")
    parser.add_argument("--create-accounts", type=int, default=4, help="per API configuration")
    parser.add_argument("--creates-per-account", type=int, default=25)
    parser.add_argument("--create-timeout", type=float, default=900.0)
    parser.add_argument("--propagation-namespaces", type=int, default=20, help="per gateway count")
    parser.add_argument("--probe-ms", type=float, default=5.0)
    args = parser.parse_args()
    args.phases = set(args.phases.split(","))
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_average": os.getloadavg()}
    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(run_postgres()) if "postgresql" in kinds else None
        for kind in kinds:
            section: dict[str, Any] = {}
            if "reads" in args.phases:
                with (
                    database(kind, postgres) as env,
                    tempfile.TemporaryDirectory(prefix="stratus-cp-reads-") as tmp,
                ):
                    section["reads"] = _progress(reads(args, env, Path(tmp)))
            if args.phases & {"creates", "propagation"}:
                with (
                    database(kind, postgres) as env,
                    tempfile.TemporaryDirectory(prefix="stratus-cp-stack-") as tmp,
                ):
                    section.update(whole_stack(args, env, Path(tmp)))
            result[kind] = section
            print(json.dumps({kind: section}), file=sys.stderr, flush=True)
    result["load_average_after"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
