"""The console's server render time at scale: the namespace list (``/namespaces``), one
namespace's workflow list (``/namespaces/{id}/workflows``) and the usage page (``/usage``) of an
account with 1,000 namespaces, 10,000 workflows and a month of hourly usage.

Run: ``.venv/bin/python bench/console.py [--database sqlite|postgresql] [--baseline PATH]``.
Starts a whole ``stratus up`` (system cell, worker, gateway, the tenant's local cell) on a fresh
data dir (PostgreSQL: a private server from ``infra/postgres.py``, one new database). One
account is created through the API with one real namespace (created through the API, ACTIVE on
its cell); ``--namespaces`` - 1 more namespaces and ``--usage-days`` days of hourly usage rows
(three kinds, every namespace, ``--usage-hours`` hours a day) are stored directly through the
ORM (nothing acts on them). ``--workflows`` workflows are started in the real namespace with
temporalio through the gateway (no worker: they stay Running, as a backlog does); the seeding
times are reported. The owner signs in through a one-time link (``POST
/api/v1/auth/console-link``, as ``stratus console`` does) and each page is fetched one request
at a time ``--requests`` times after a warm-up (p50/p99 of the whole answer over loopback, and
the page's size). ``--baseline PATH`` starts a second API process from the checkout at PATH on
the same data dir and database (environment copied from ``stratus up``'s API) and measures both
processes page by page, alternately, so the figures sit side by side on the same data.
``sql_statements_per_page``: the statements each checkout's API executes for one page (an
extra API whose SQLAlchemy engines print a line per statement).
Prints one JSON document; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from api_read import percentiles
from support import StratusUp, Tenant, create_active_namespace, new_tenant, tls_for
from temporalio.client import Client

from infra.postgres import run_postgres
from infra.probes import api_alive

_SEED = """
import sys, uuid, datetime as dt, json
from sqlalchemy import create_engine, insert
from controlplane.models import Namespace, UsageRecord
from controlplane.models.usage_record import month_of
from controlplane.states import NamespaceState
url, account, namespaces, first_day, days, hours = sys.argv[1:7]
namespaces, days, hours = int(namespaces), int(days), int(hours)
now = dt.datetime.now(dt.UTC)
engine = create_engine(url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg"))
extra = [f"bench{n:04d}.{account}" for n in range(namespaces - 1)]
with engine.begin() as connection:
    connection.execute(insert(Namespace), [
        {"id": ns, "account_id": account, "name": ns.split(".")[0], "retention_days": 7,
         "accepted_client_ca": "", "certificate_filters": [], "state": NamespaceState.ACTIVE,
         "resource_version": str(uuid.uuid4()), "created_at": now, "updated_at": now}
        for ns in extra
    ])
    start = dt.datetime.fromisoformat(first_day).replace(tzinfo=dt.UTC)
    kinds = ("actions.workflow", "storage.active", "storage.retained")
    for day in range(days):
        rows = []
        for hour in range(hours):
            at = start + dt.timedelta(days=day, hours=hour)
            rows += [
                {"namespace_id": ns, "account_id": account, "hour_start": at,
                 "period_start": month_of(at), "kind": kind,
                 "quantity": 1000 + n if kind.startswith("actions") else 10**9 * (1 + n % 7),
                 "created_at": now, "updated_at": now}
                for n, ns in enumerate(extra + [sys.argv[7]]) for kind in kinds
            ]
        connection.execute(insert(UsageRecord), rows)
"""


def free_port() -> int:
    """A port from the kernel's ephemeral range: apart from the range tests hand out, so the
    bench can run while tests do."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _sign_in(base_url: str, api_key: str) -> httpx.Client:
    """A console client holding the web session of ``api_key``'s user: a one-time link, spent."""
    client = httpx.Client(base_url=base_url, timeout=120)
    link = client.post("/api/v1/auth/console-link", headers={"Authorization": f"Bearer {api_key}"})
    link.raise_for_status()
    spent = client.post(httpx.URL(link.json()["url"]).path)
    assert spent.status_code == 303, spent.text
    return client


async def _start_workflows(up: StratusUp, tenant: Tenant, namespace_id: str, count: int) -> None:
    client = await Client.connect(
        up.gateway_address,
        namespace=namespace_id,
        tls=tls_for(up, tenant.client_cert, namespace_id),
    )
    queue: asyncio.Queue[int] = asyncio.Queue()
    for number in range(count):
        queue.put_nowait(number)

    async def starter() -> None:
        while not queue.empty():
            number = queue.get_nowait()
            await client.start_workflow(
                "BenchOrder", {"order": number}, id=f"order-{number:05d}", task_queue="bench"
            )

    await asyncio.gather(*(starter() for _ in range(50)))


def _measure(clients: dict[str, httpx.Client], path: str, requests: int) -> dict[str, Any]:
    """Each client (one per API process) fetches ``path`` in turn, one request at a time."""
    samples: dict[str, list[float]] = {name: [] for name in clients}
    sizes: dict[str, int] = {}
    for name, client in clients.items():
        for _ in range(5):  # warm up
            answer = client.get(path)
            assert answer.status_code == 200, (name, path, answer.status_code, answer.text[:500])
            sizes[name] = len(answer.content)
    for _ in range(requests):
        for name, client in clients.items():
            started = time.perf_counter()
            answer = client.get(path)
            samples[name].append(time.perf_counter() - started)
            assert answer.status_code == 200
    measured = {
        name: {"requests": requests, **percentiles(samples[name]), "bytes": sizes[name]}
        for name in clients
    }
    print(f"{path}: {json.dumps(measured)}", file=sys.stderr, flush=True)
    return measured


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


# Runs the API with one line on stderr per SQL statement it executes (any engine's).
_COUNTING_API = """
import runpy, sys
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "before_cursor_execute")
def _count(conn, cursor, statement, parameters, context, executemany):
    print("BENCH-SQL", statement.split(None, 1)[0], file=sys.stderr, flush=True)

runpy.run_module("controlplane.app", run_name="__main__")
"""


@contextlib.contextmanager
def _extra_api(
    up: StratusUp, checkout: Path, name: str, *, count_sql: bool = False
) -> Iterator[tuple[str, Path]]:
    """An API of ``checkout`` beside ``stratus up``'s, on the same data dir and database; its
    URL and log."""
    port = free_port()
    pid = int((up.data_dir / "run" / "api.pid").read_text())
    env = _environ(pid) | {"STRATUS_API_PORT": str(port), "PYTHONPATH": str(checkout)}
    log = up.data_dir / "logs" / f"api-{name}.log"
    command = ["-c", _COUNTING_API] if count_sql else ["-m", "controlplane.app"]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, *command],
            env=env,
            cwd=checkout,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not api_alive(url, process):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {name} API did not start")
            time.sleep(0.1)
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=30)


def _statements(
    up: StratusUp, checkout: Path, api_key: str, pages: dict[str, str]
) -> dict[str, int]:
    """SQL statements the API of ``checkout`` executes to answer each page (fewest of three
    requests, so that a background statement does not count)."""
    with (
        _extra_api(up, checkout, f"sql-{checkout.name}", count_sql=True) as (url, log),
        contextlib.closing(_sign_in(url, api_key)) as client,
    ):
        counts: dict[str, int] = {}
        for name, path in pages.items():
            client.get(path)
            seen = []
            for _ in range(3):
                before = log.read_text(errors="replace").count("BENCH-SQL")
                assert client.get(path).status_code == 200
                seen.append(log.read_text(errors="replace").count("BENCH-SQL") - before)
            counts[name] = min(seen)
    return counts


def run(args: argparse.Namespace, extra_env: dict[str, str], tmp: Path) -> dict[str, Any]:
    up = StratusUp(
        tmp / "data",
        free_port(),
        free_port(),
        extra_env=extra_env,
        gateway_api_key_port=free_port(),
    )
    result: dict[str, Any] = {
        "namespaces": args.namespaces,
        "workflows": args.workflows,
        "usage_rows": args.namespaces * args.usage_days * args.usage_hours * 3,
    }
    try:
        started = time.perf_counter()
        up.start()
        result["stratus_up_seconds"] = round(time.perf_counter() - started, 1)
        tenant = new_tenant(up, "Bench")
        started = time.perf_counter()
        namespace_id = create_active_namespace(up, tenant, "orders")
        result["first_namespace_active_seconds"] = round(time.perf_counter() - started, 1)
        today = dt.datetime.now(dt.UTC).date()
        month = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        started = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-c",
                _SEED,
                up.database_url,
                tenant.account_id,
                str(args.namespaces),
                month.isoformat(),
                str(args.usage_days),
                str(args.usage_hours),
                namespace_id,
            ],
            check=True,
            timeout=1800,
        )
        result["seed_rows_seconds"] = round(time.perf_counter() - started, 1)
        print(f"seeded: {json.dumps(result)}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        asyncio.run(_start_workflows(up, tenant, namespace_id, args.workflows))
        seconds = time.perf_counter() - started
        result["start_workflows"] = {
            "seconds": round(seconds, 1),
            "per_second": round(args.workflows / seconds, 1),
            "state": "Running (no worker)",
        }
        pages = {
            "namespace_list": "/namespaces",
            "workflow_list": f"/namespaces/{namespace_id}/workflows",
            "usage_previous_month": f"/usage?month={month.strftime('%Y-%m')}",
        }
        pages = {name: path for name, path in pages.items() if name in args.pages.split(",")}
        with contextlib.ExitStack() as stack:
            clients = {"this": _sign_in(up.api_url, tenant.api_key)}
            if args.baseline is not None:
                url, _ = stack.enter_context(_extra_api(up, args.baseline, "baseline"))
                clients = {"baseline": _sign_in(url, tenant.api_key)} | clients
            for client in clients.values():
                stack.callback(client.close)
            result["pages"] = {
                name: {"path": path, **_measure(clients, path, args.requests)}
                for name, path in pages.items()
            }
        checkouts = {"this": Path(__file__).resolve().parents[1]}
        if args.baseline is not None:
            checkouts = {"baseline": args.baseline} | checkouts
        result["sql_statements_per_page"] = {
            name: _statements(up, checkout, tenant.api_key, pages)
            for name, checkout in checkouts.items()
        }
    finally:
        up.cleanup()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="sequential requests a page")
    parser.add_argument("--namespaces", type=int, default=1000)
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--usage-days", type=int, default=30, help="days of the previous month")
    parser.add_argument("--usage-hours", type=int, default=2, help="hourly rows a day and kind")
    parser.add_argument("--baseline", type=Path, help="another checkout, measured alternately")
    parser.add_argument(
        "--pages",
        default="namespace_list,workflow_list,usage_previous_month",
        help="which pages to measure (comma-separated)",
    )
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stratus-bench-console-") as tmp:
        if args.database == "sqlite":
            result = run(args, {}, Path(tmp))
        else:
            with run_postgres() as postgres:
                name = postgres.unique_database("bench_console")
                try:
                    env = {"STRATUS_DATABASE_URL": postgres.database_url(name)}
                    result = run(args, env, Path(tmp))
                finally:
                    postgres.drop_database(name)
    print(json.dumps({args.database: result, "cpu_count": os.cpu_count()}, indent=2))


if __name__ == "__main__":
    main()
