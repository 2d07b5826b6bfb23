"""API-key spray: a real key's latency while random well-formed keys are sprayed at the gateway.

Run: ``.venv/bin/python bench/api_key_spray.py``. Starts ``stratus up`` in a temp data dir on
free 127.0.0.1 ports, creates an account, an ``api_key`` namespace and a service account key,
then measures ``DescribeNamespace`` with the real key twice: alone (``quiet``) and while
``--spray`` random keys of the right format (``stratus_<id>_<secret>``) are sent from the same
host, ``--concurrency`` at a time (``spray``), as fast as the gateway answers or paced at
``--rate`` keys per second. Prints one JSON document: the real key's
p50/p99 and errors per phase, the sprayed calls' status codes, and how many verification calls
reached the control plane (counted from the API's own ``/metrics``). Stops what it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import string
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

# Runnable from a checkout without installing the package; StratusUp is the tests' launcher.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import grpc
import grpc.aio
from identity_support import service_account_with_key
from support import StratusUp, api_key_verifications, free_port, http, new_tenant
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client, TLSConfig
from temporalio.service import RPCError

DESCRIBE = "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"
_ALNUM = string.ascii_lowercase + string.digits
_URLSAFE = string.ascii_letters + string.digits + "-_"


def random_key(rng: random.Random) -> str:
    key_id = "".join(rng.choice(_ALNUM) for _ in range(12))
    return f"stratus_{key_id}_" + "".join(rng.choice(_URLSAFE) for _ in range(43))


def percentiles(samples: list[float]) -> dict[str, float | int]:
    if not samples:
        return {"calls": 0}
    ordered = sorted(samples)
    return {
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def real_key_calls(
    client: Client, namespace: str, *, count: int | None = None, until: asyncio.Event | None = None
) -> tuple[list[float], Counter[str]]:
    request = wsv1.DescribeNamespaceRequest(namespace=namespace)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    while (count is None or len(latencies) + sum(errors.values()) < count) and not (
        until is not None and until.is_set()
    ):
        started = time.perf_counter()
        try:
            await client.workflow_service.describe_namespace(request, timeout=None)
        except RPCError as error:
            errors[error.status.name if error.status else "UNKNOWN"] += 1
        else:
            latencies.append(time.perf_counter() - started)
        if until is not None:
            # A real worker does not spin; ~100 calls per second is a busy one.
            await asyncio.sleep(0.01)
    return latencies, errors


async def spray(
    stratus: StratusUp, namespace: str, keys: int, concurrency: int, seed: int, rate: float
) -> tuple[Counter[str], float]:
    rng = random.Random(seed)
    tokens = [random_key(rng) for _ in range(keys)]
    body = wsv1.DescribeNamespaceRequest(namespace=namespace).SerializeToString()
    codes: Counter[str] = Counter()
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for index, token in enumerate(tokens):
        queue.put_nowait((index, token))
    channel = grpc.aio.secure_channel(
        stratus.gateway_api_key_address,
        grpc.ssl_channel_credentials(stratus.gateway_ca),
    )
    call = channel.unary_unary(DESCRIBE)

    async def sprayer() -> None:
        while not queue.empty():
            index, token = queue.get_nowait()
            if rate:
                # Paced: key ``index`` leaves at ``index / rate`` seconds after the start.
                await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
            try:
                await call(body, metadata=(("authorization", f"Bearer {token}"),), timeout=30)
                codes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                codes[error.code().name] += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(sprayer() for _ in range(concurrency)))
    finally:
        await channel.close(None)
    return codes, time.perf_counter() - started


async def measure(stratus: StratusUp, args: argparse.Namespace) -> dict[str, Any]:
    tenant = new_tenant(stratus, "Spray")
    with http(stratus, tenant.api_key) as raw:
        created = raw.post(
            "/namespaces",
            json={
                "name": "spray",
                "accepted_client_ca": tenant.ca.cert_pem.decode(),
                "auth_method": "api_key",
            },
        )
        created.raise_for_status()
    namespace = str(created.json()["namespace"]["id"])
    with tenant.client(stratus) as api:
        operation = api.wait_for_operation(created.json()["async_operation"]["id"], timeout=180)
        assert operation.state == "FULFILLED", operation.failure_reason
    _, token = service_account_with_key(
        stratus,
        tenant.api_key,
        {"name": "bench", "namespace_scope": {"namespace_id": namespace, "permission": "read"}},
    )
    client = await Client.connect(
        stratus.gateway_api_key_address,
        namespace=namespace,
        api_key=token,
        tls=TLSConfig(server_root_ca_cert=stratus.gateway_ca),
    )
    await real_key_calls(client, namespace, count=50)  # warm up

    quiet, quiet_errors = await real_key_calls(client, namespace, count=args.quiet_calls)

    before = api_key_verifications(stratus)
    done = asyncio.Event()
    real_task = asyncio.create_task(real_key_calls(client, namespace, until=done))
    codes, spray_seconds = await spray(
        stratus, namespace, args.spray, args.concurrency, args.seed, args.rate
    )
    done.set()
    during, during_errors = await real_task
    after = api_key_verifications(stratus)
    reached = {
        str(status): after.get(status, 0) - before.get(status, 0)
        for status in sorted(set(before) | set(after))
    }
    return {
        "sprayed_keys": args.spray,
        "spray_concurrency": args.concurrency,
        "spray_rate_per_second": args.rate or "unpaced",
        "spray_seconds": round(spray_seconds, 2),
        "spray_codes": dict(codes),
        "control_plane_verify_calls_during_spray": {
            status: count for status, count in reached.items() if count
        },
        "real_key": {
            "quiet": {**percentiles(quiet), "errors": dict(quiet_errors)},
            "spray": {**percentiles(during), "errors": dict(during_errors)},
        },
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spray", type=int, default=3000, help="random keys to spray")
    parser.add_argument("--concurrency", type=int, default=100, help="spray calls in flight")
    parser.add_argument(
        "--rate", type=float, default=0, help="sprayed keys per second (0: as fast as possible)"
    )
    parser.add_argument("--quiet-calls", type=int, default=300)
    parser.add_argument("--seed", type=int, default=10)
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stratus-spray-") as tmp:
        stratus = StratusUp(Path(tmp) / "data", free_port(), free_port())
        try:
            stratus.start(timeout=180)
            result = asyncio.run(measure(stratus, args))
        finally:
            stratus.cleanup()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
