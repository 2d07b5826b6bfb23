"""Registered cells: namespace placement on shared cells, the gateway's added latency in front of a
TLS cell and a plaintext cell, and one workload through 1 vs 2 gateway processes.

Run: ``.venv/bin/python bench/cells.py [--accounts 8 --namespaces-per-account 3 ...]``.
Starts its own ``stratus up`` (``STRATUS_CELL_PLACEMENT=shared``) in a temp dir on free
127.0.0.1 ports, and two Temporal dev servers it registers as external shared cells (K=2):
``bench-tls``, reached only through an nginx ``stream`` frontend that demands a client
certificate (``infra.cell_frontend``), and ``bench-plain``, plaintext on loopback. Prints one
JSON document and stops what it started; never fails on a time.

- ``placement``: ``--accounts`` accounts each create ``--namespaces-per-account`` namespaces
  (one after the other per account, all accounts at once) through the API. Creates accepted
  per second (202s over the time to the last one) and completed to ACTIVE per second (FULFILLED
  operations over the time to the last one), create → ACTIVE p50/p99, refusals by status and
  problem type, and the resulting namespaces per cell against each cell's ``max_namespaces``
  (``--max-namespaces``; by default the two cells hold fewer than are asked for, so the last
  creates are refused with 503 ``no-cell-capacity``).
- ``gateway_added_latency``: DescribeNamespace over raw gRPC channels, one call at a time,
  interleaved in blocks: for a namespace on each cell, direct to the cell (the TLS cell: through
  its frontend with the cell's client certificate, as the gateway reaches it) vs through the
  gateway (tenant mTLS); p50/p99 per path and the added p50/p99 over direct, side by side.
- ``gateway_processes``: ``--workflows`` workflows of one activity (real ``temporalio`` client
  and worker, ``--concurrency`` in flight) through the ``stratus up`` gateway alone, then spread
  over it and a second ``stratus serve gateway`` process (one client and one worker on each, the
  same task queue), in halves ordered 1-2-2-1 so drift on the cell favours neither; throughput
  and per-workflow p50/p99.
- ``machine``: CPUs and the load average before and after each phase (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

# Runnable from a checkout: the packages, the tests' support and the gateway bench's parts.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc
import grpc.aio
import httpx
from gateway import (
    BENCH_CELL_LIMITS,
    DoubleWorkflow,
    double,
    interleaved,
    latencies,
    summary,
)
from support import STRATUS, StratusUp, Tenant, free_port, new_tenant, server_name, tls_for
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from dataplane.cells import LocalCellProvider
from infra.cell_frontend import CellFrontend, run_cell_frontend

TLS_CELL, PLAIN_CELL = "bench-tls", "bench-plain"


def load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    return {"1m": round(one, 2), "5m": round(five, 2), "15m": round(fifteen, 2)}


def percentiles_ms(seconds: list[float]) -> dict[str, float] | None:
    return summary([s * 1000 for s in seconds]) if seconds else None


# --- what the bench runs ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def dev_cells(base: Path) -> AsyncIterator[tuple[LocalCellProvider, str, str]]:
    """Two Temporal dev servers, as an operator's clusters (Stratus only registers them). The
    dev server's default per-namespace rate limits are lifted: the bench measures Stratus."""
    provider = LocalCellProvider(base, dynamic_config=BENCH_CELL_LIMITS)
    started: list[str] = []
    try:
        addresses = []
        for name in ("bench-upstream-tls", "bench-upstream-plain"):
            endpoint = await provider.provision(name)
            started.append(endpoint.cell_id)
            await provider.start(endpoint)
            addresses.append(endpoint.grpc_address)
        yield provider, addresses[0], addresses[1]
    finally:
        for cell_id in started:
            with contextlib.suppress(Exception):
                await provider.stop(cell_id)


@contextlib.contextmanager
def stratus_up(base: Path) -> Iterator[StratusUp]:
    up = StratusUp(
        base / "stratus",
        free_port(),
        free_port(),
        extra_env={"STRATUS_CELL_PLACEMENT": "shared", "STRATUS_METERING_INTERVAL_SECONDS": "60"},
    )
    try:
        up.start(timeout=300)
        yield up
    finally:
        up.cleanup()


@contextlib.contextmanager
def second_gateway(up: StratusUp) -> Iterator[str]:
    """``stratus serve gateway`` on the same PKI and API as ``stratus up``'s gateway; yields
    its address once it serves."""
    port = free_port()
    pki = up.data_dir / "pki"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")} | {
        "STRATUS_GATEWAY_PORT": str(port),
        "STRATUS_GATEWAY_ID": "bench-gateway-2",
        "STRATUS_GATEWAY_CERT": str(pki / "gateway.pem"),
        "STRATUS_GATEWAY_KEY": str(pki / "gateway.key"),
        "STRATUS_GATEWAY_CA": str(pki / "gateway-ca.pem"),
        "STRATUS_GATEWAY_CA_KEY": str(pki / "gateway-ca.key"),
        "STRATUS_GATEWAY_API_URL": up.api_url,
        "STRATUS_GATEWAY_API_KEY": up.operator_key,
    }
    with open(up.data_dir / "gateway-2.log", "ab") as log:
        process = subprocess.Popen(
            [STRATUS, "serve", "gateway"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"localhost:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def wait_serving(address: str, tenant: Tenant, up: StratusUp, namespace_id: str) -> None:
    """Until a DescribeNamespace for ``namespace_id`` succeeds through the gateway at
    ``address`` (it has started and fetched its routes)."""
    deadline = time.monotonic() + 120
    body = wsv1.DescribeNamespaceRequest(namespace=namespace_id).SerializeToString()
    async with gateway_channel(address, up, tenant, namespace_id) as channel:
        while True:
            try:
                await latencies(channel, body, 1)
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


def gateway_channel(
    address: str, up: StratusUp, tenant: Tenant, namespace_id: str
) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        up.gateway_ca, tenant.client_cert.key_pem, tenant.client_cert.cert_pem
    )
    return grpc.aio.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", server_name(namespace_id))]
    )


def frontend_channel(frontend: CellFrontend) -> grpc.aio.Channel:
    """Direct to the TLS cell as the gateway reaches it: its frontend, the cell's client cert."""
    credentials = grpc.ssl_channel_credentials(
        frontend.server_ca.cert_pem, frontend.client.key_pem, frontend.client.cert_pem
    )
    return grpc.aio.secure_channel(
        frontend.address,
        credentials,
        options=[("grpc.ssl_target_name_override", frontend.server_name)],
    )


# --- phases ----------------------------------------------------------------------------------


def register_cells(up: StratusUp, frontend: CellFrontend, plain: str, capacity: int) -> None:
    bodies = [
        {
            "name": TLS_CELL,
            "frontend": frontend.address,
            "tls_ca": frontend.server_ca.cert_pem.decode(),
            "tls_cert": frontend.client.cert_pem.decode(),
            "tls_key": frontend.client.key_pem.decode(),
            "server_name": frontend.server_name,
        },
        {"name": PLAIN_CELL, "frontend": plain},
    ]
    with httpx.Client(
        base_url=up.api_url + "/api/v1",
        headers={"Authorization": f"Bearer {up.operator_key}"},
        timeout=60,
    ) as operator:
        for body in bodies:
            answer = operator.post(
                "/cells", json={**body, "max_namespaces": capacity, "placement": "shared"}
            )
            if answer.status_code != 201:
                raise RuntimeError(f"registering {body['name']}: {answer.text}")


async def placement(up: StratusUp, tenants: list[Tenant], per_account: int) -> dict[str, Any]:
    accepted_at: list[float] = []
    active_at: list[float] = []
    to_active: list[float] = []
    refused: dict[str, int] = {}
    failed: list[str] = []
    limits = httpx.Limits(max_connections=len(tenants) * 2)
    async with httpx.AsyncClient(
        base_url=up.api_url + "/api/v1", timeout=120, limits=limits
    ) as api:
        started = time.perf_counter()

        async def follow(key: str, operation_id: str, sent: float) -> None:
            headers = {"Authorization": f"Bearer {key}"}
            while True:
                state = (await api.get(f"/operations/{operation_id}", headers=headers)).json()
                if state["state"] in ("FULFILLED", "FAILED"):
                    break
                await asyncio.sleep(0.2)
            now = time.perf_counter()
            if state["state"] == "FULFILLED":
                active_at.append(now - started)
                to_active.append(now - sent)
            else:
                failed.append(str(state.get("failure_reason")))

        async def account(tenant: Tenant) -> None:
            headers = {"Authorization": f"Bearer {tenant.api_key}"}
            followers = []
            for index in range(per_account):
                sent = time.perf_counter()
                answer = await api.post(
                    "/namespaces",
                    headers=headers,
                    json={
                        "name": f"bench{index}",
                        "retention_days": 1,
                        "accepted_client_ca": tenant.ca.cert_pem.decode(),
                    },
                )
                if answer.status_code == 202:
                    accepted_at.append(time.perf_counter() - started)
                    operation_id = answer.json()["async_operation"]["id"]
                    followers.append(follow(tenant.api_key, operation_id, sent))
                else:
                    problem = answer.json().get("type", "").rsplit("/", 1)[-1]
                    label = f"{answer.status_code} {problem}"
                    refused[label] = refused.get(label, 0) + 1
            await asyncio.gather(*followers)

        await asyncio.gather(*(account(tenant) for tenant in tenants))
        operator = {"Authorization": f"Bearer {up.operator_key}"}
        cells = (await api.get("/cells", headers=operator)).json()["cells"]
    per_cell = {
        cell["name"]: {
            "namespaces": cell["namespace_count"],
            "max_namespaces": cell["max_namespaces"],
        }
        for cell in cells
    }
    return {
        "accounts": len(tenants),
        "creates": len(tenants) * per_account,
        "accepted": len(accepted_at),
        "refused": refused,
        "accepted_per_s": round(len(accepted_at) / max(accepted_at), 2) if accepted_at else 0,
        "active": len(active_at),
        "failed": failed,
        "active_per_s": round(len(active_at) / max(active_at), 2) if active_at else 0,
        "seconds_to_last_active": round(max(active_at), 2) if active_at else None,
        "create_to_active": percentiles_ms(to_active),
        "per_cell": per_cell,
        "respects_max_namespaces": all(
            cell["namespaces"] <= cell["max_namespaces"] for cell in per_cell.values()
        ),
    }


def namespace_on(up: StratusUp, cell: str, tenants: list[Tenant]) -> tuple[str, Tenant]:
    with httpx.Client(
        base_url=up.api_url + "/api/v1",
        headers={"Authorization": f"Bearer {up.operator_key}"},
        timeout=60,
    ) as operator:
        first = operator.get(f"/cells/{cell}").json()["namespaces"][0]
    (tenant,) = [t for t in tenants if t.account_id == first["account_id"]]
    return first["namespace_id"], tenant


async def added_latency(
    up: StratusUp,
    frontend: CellFrontend,
    addresses: tuple[str, str],
    tls_namespace: tuple[str, Tenant],
    plain_namespace: tuple[str, Tenant],
    calls: int,
) -> dict[str, Any]:
    """``addresses``: the plaintext dev servers behind the TLS cell's frontend and of the
    plaintext cell."""
    gateway = f"127.0.0.1:{up.gateway_port}"
    (tls_id, tls_tenant), (plain_id, plain_tenant) = tls_namespace, plain_namespace
    paths = {
        "tls_cell_direct": (frontend_channel(frontend), tls_id),
        "tls_cell_gateway": (gateway_channel(gateway, up, tls_tenant, tls_id), tls_id),
        # The dev server behind the frontend, in plaintext: what the nginx mTLS hop costs.
        "tls_cell_upstream_plaintext": (grpc.aio.insecure_channel(addresses[0]), tls_id),
        "plain_cell_direct": (grpc.aio.insecure_channel(addresses[1]), plain_id),
        "plain_cell_gateway": (gateway_channel(gateway, up, plain_tenant, plain_id), plain_id),
    }
    blocks = 5
    async with contextlib.AsyncExitStack() as stack:
        runs = {}
        for name, (channel, namespace_id) in paths.items():
            await stack.enter_async_context(channel)
            body = wsv1.DescribeNamespaceRequest(namespace=namespace_id).SerializeToString()
            await latencies(channel, body, 200)  # warm-up

            async def run(channel: grpc.aio.Channel = channel, body: bytes = body) -> list[float]:
                return await latencies(channel, body, calls // blocks)

            runs[name] = run
        samples = await interleaved(runs, blocks)  # type: ignore[arg-type]
    shown = {name: summary(values) for name, values in samples.items()}

    def added(cell: str, key: str) -> float:
        return round(shown[f"{cell}_gateway"][key] - shown[f"{cell}_direct"][key], 4)

    frontend_hop = round(
        shown["tls_cell_direct"]["p50_ms"] - shown["tls_cell_upstream_plaintext"]["p50_ms"], 4
    )
    return {
        "call": "DescribeNamespace, raw gRPC, one at a time",
        "calls_per_path": calls,
        "paths_ms": shown,
        "added_over_direct_ms": {
            "tls_cell_behind_nginx_mtls": {
                "p50": added("tls_cell", "p50_ms"),
                "p99": added("tls_cell", "p99_ms"),
            },
            "plain_local_cell": {
                "p50": added("plain_cell", "p50_ms"),
                "p99": added("plain_cell", "p99_ms"),
            },
        },
        # Direct through the TLS cell's nginx frontend over its dev server in plaintext (p50).
        "nginx_mtls_frontend_hop_p50_ms": frontend_hop,
    }


async def workflows(
    clients: list[Client], task_queue: str, count: int, concurrency: int
) -> dict[str, Any]:
    """``count`` workflows spread round-robin over ``clients`` (``concurrency`` in flight):
    seconds and per-workflow latencies."""
    limit = asyncio.Semaphore(concurrency)
    durations: list[float] = []

    async def one(value: int) -> None:
        async with limit:
            started = time.perf_counter()
            result = await clients[value % len(clients)].execute_workflow(
                DoubleWorkflow.run,
                value,
                id=f"bench-{uuid.uuid4()}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=300),
            )
            durations.append(time.perf_counter() - started)
            if result != value * 2:
                raise AssertionError(f"workflow returned {result} for {value}")

    started = time.perf_counter()
    await asyncio.gather(*(one(value) for value in range(count)))
    return {"seconds": time.perf_counter() - started, "durations": durations}


async def gateway_processes(
    up: StratusUp, second: str, namespace: tuple[str, Tenant], count: int, concurrency: int
) -> dict[str, Any]:
    namespace_id, tenant = namespace
    tls = tls_for(up, tenant.client_cert, namespace_id)
    first_client = await Client.connect(up.gateway_address, namespace=namespace_id, tls=tls)
    second_client = await Client.connect(second, namespace=namespace_id, tls=tls)
    setups = {"one_gateway": [first_client], "two_gateways": [first_client, second_client]}
    task_queue = f"bench-{uuid.uuid4()}"
    seconds = dict.fromkeys(setups, 0.0)
    durations: dict[str, list[float]] = {name: [] for name in setups}
    loads: dict[str, list[dict[str, float]]] = {name: [] for name in setups}
    half = count // 2
    for name, halfcount in (
        ("one_gateway", half),
        ("two_gateways", half),
        ("two_gateways", count - half),
        ("one_gateway", count - half),
    ):
        # One worker per gateway in use, polling the same task queue; unsandboxed: the bench
        # measures transport, not the sandbox.
        async with contextlib.AsyncExitStack() as running:
            for client in setups[name]:
                worker = Worker(
                    client,
                    task_queue=task_queue,
                    workflows=[DoubleWorkflow],
                    activities=[double],
                    workflow_runner=UnsandboxedWorkflowRunner(),
                )
                await running.enter_async_context(worker)
            await workflows(setups[name], task_queue, 10, concurrency)  # warm-up
            measured = await workflows(setups[name], task_queue, halfcount, concurrency)
        seconds[name] += measured["seconds"]
        durations[name] += measured["durations"]
        loads[name].append(load())
    per_s = {name: count / seconds[name] for name in setups}
    return {
        "workflows": count,
        "concurrency": concurrency,
        "two_over_one_throughput": round(per_s["two_gateways"] / per_s["one_gateway"], 3),
        **{
            name: {
                "gateway_processes": len(setups[name]),
                "workflows_per_s": round(per_s[name], 2),
                "per_workflow_ms": percentiles_ms(durations[name]),
                "load_after_each_half": loads[name],
            }
            for name in setups
        },
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_at_start": load()}}
    with tempfile.TemporaryDirectory(prefix="stratus-cells-bench-") as tmp:
        base = Path(tmp)
        async with dev_cells(base / "cells") as (_, tls_upstream, plain_address):
            with (
                run_cell_frontend(tls_upstream) as frontend,
                stratus_up(base) as up,
            ):
                register_cells(up, frontend, plain_address, args.max_namespaces)
                tenants = [new_tenant(up, f"Bench{index}") for index in range(args.accounts)]
                result["machine"]["load_before_placement"] = load()
                result["placement"] = await placement(up, tenants, args.namespaces_per_account)
                result["machine"]["load_after_placement"] = load()
                on_tls = namespace_on(up, TLS_CELL, tenants)
                on_plain = namespace_on(up, PLAIN_CELL, tenants)
                result["gateway_added_latency"] = await added_latency(
                    up, frontend, (tls_upstream, plain_address), on_tls, on_plain, args.calls
                )
                result["machine"]["load_after_latency"] = load()
                workload = on_tls if args.workload_cell == "tls" else on_plain
                with second_gateway(up) as second:
                    await wait_serving(second, workload[1], up, workload[0])
                    processes = await gateway_processes(
                        up, second, workload, args.workflows, args.concurrency
                    )
                processes["namespace_cell"] = (
                    TLS_CELL if args.workload_cell == "tls" else PLAIN_CELL
                )
                result["gateway_processes"] = processes
                result["machine"]["load_at_end"] = load()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=8)
    parser.add_argument("--namespaces-per-account", type=int, default=3)
    parser.add_argument(
        "--max-namespaces", type=int, default=10, help="capacity of each of the two cells"
    )
    parser.add_argument("--calls", type=int, default=2000, help="DescribeNamespace calls per path")
    parser.add_argument("--workflows", type=int, default=200, help="per gateway set-up")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--workload-cell", choices=["plain", "tls"], default="plain")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args)), indent=2))


if __name__ == "__main__":
    main()
