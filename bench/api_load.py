"""SQLite under load: 50 concurrent API clients and 2 extra gateways polling, no 5xx.

Run: ``.venv/bin/python bench/api_load.py``. Starts ``stratus up`` (SQLite) in a temp data
dir on free 127.0.0.1 ports, creates ``--accounts`` accounts with one namespace each, starts
``--gateways`` extra gateway processes (``python -m dataplane.gateway``, distinct ids and
ports, polling routes like the built-in one), then runs ``--clients`` concurrent API clients
for ``--seconds``: a mix of reads (get and list namespaces, list users, usage) and writes
(invite a user; create, disable and delete an API key). Prints one JSON document: requests,
status counts, p50/p99 per kind, the number of 5xx answers (should be 0) and of
"database is locked" lines in the API's and worker's logs. ``--hogs N`` adds N processes
that burn CPU for the whole run, to see the load on a busy machine. Stops what it started.

The code under test is whatever ``controlplane`` the ``stratus`` processes import: set
``PYTHONPATH`` to another checkout to measure it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

# Runnable from a checkout without installing the package; StratusUp is the tests' launcher.
# Appended, so a PYTHONPATH naming another checkout decides which code runs.
sys.path.append(str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx
from support import StratusUp, free_port, new_tenant

from auth import generate_ca


def percentiles(samples: list[float]) -> dict[str, float | int]:
    ordered = sorted(samples)
    return {
        "calls": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def start_gateway(stratus: StratusUp, index: int) -> subprocess.Popen[bytes]:
    pki = stratus.data_dir / "pki"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    env.update(
        {
            "STRATUS_GATEWAY_ID": f"bench-gateway-{index}",
            "STRATUS_GATEWAY_HOST": "127.0.0.1",
            "STRATUS_GATEWAY_PORT": str(free_port()),
            "STRATUS_GATEWAY_CERT": str(pki / "gateway.pem"),
            "STRATUS_GATEWAY_KEY": str(pki / "gateway.key"),
            "STRATUS_GATEWAY_CA": str(pki / "gateway-ca.pem"),
            "STRATUS_GATEWAY_CA_KEY": str(pki / "gateway-ca.key"),
            "STRATUS_GATEWAY_API_URL": stratus.api_url,
            "STRATUS_GATEWAY_API_KEY": stratus.operator_key,
            "PYTHONUNBUFFERED": "1",
        }
    )
    log = open(stratus.data_dir / "logs" / f"bench-gateway-{index}.log", "ab")  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "dataplane.gateway"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    finally:
        log.close()


def start_hogs(count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    """Processes that burn a CPU each for ``seconds`` (a busy machine)."""
    burn = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    return [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(count)]


class Load:
    """Latencies and statuses per kind of call, shared by every client."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)
        self.transport_errors: Counter[str] = Counter()

    async def call(
        self, client: httpx.AsyncClient, kind: str, method: str, url: str, **kw: Any
    ) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await client.request(method, url, **kw)
        except httpx.HTTPError as error:
            self.transport_errors[f"{kind}: {type(error).__name__}"] += 1
            return None
        self.latencies[kind].append(time.perf_counter() - started)
        self.statuses[kind][response.status_code] += 1
        return response


async def api_client(
    load: Load, base: str, api_key: str, namespace_id: str, seed: int, deadline: float
) -> None:
    rng = random.Random(seed)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    expiry = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        while time.monotonic() < deadline:
            roll = rng.random()
            if roll < 0.25:
                await load.call(client, "get_namespace", "GET", f"/namespaces/{namespace_id}")
            elif roll < 0.40:
                await load.call(client, "list_namespaces", "GET", "/namespaces")
            elif roll < 0.50:
                await load.call(client, "list_users", "GET", "/users")
            elif roll < 0.60:
                await load.call(
                    client, "usage", "GET", "/usage", params={"start": today, "end": today}
                )
            elif roll < 0.75:
                email = f"load-{uuid.uuid4().hex[:12]}@bench.example"
                await load.call(
                    client,
                    "invite_user",
                    "POST",
                    "/users",
                    json={"email": email, "account_role": "developer"},
                )
            else:
                created = await load.call(
                    client,
                    "create_api_key",
                    "POST",
                    "/api-keys",
                    json={"display_name": "load", "expiry": expiry},
                )
                if created is None or created.status_code != 201:
                    continue
                key_id = created.json()["api_key"]["id"]
                await load.call(client, "disable_api_key", "POST", f"/api-keys/{key_id}/disable")
                await load.call(client, "delete_api_key", "DELETE", f"/api-keys/{key_id}")


def locked_lines(log: Path) -> int:
    if not log.exists():
        return 0
    return sum("database is locked" in line for line in log.read_text(errors="replace").split("\n"))


def accounts_with_namespaces(stratus: StratusUp, count: int) -> list[tuple[str, str]]:
    """``count`` accounts with one namespace each: (owner API key, namespace id) pairs."""
    created_pairs = []
    for index in range(count):
        tenant = new_tenant(stratus, f"Load{index}")
        with httpx.Client(
            base_url=stratus.api_url + "/api/v1",
            headers={"Authorization": f"Bearer {tenant.api_key}"},
            timeout=60,
        ) as client:
            created = client.post(
                "/namespaces",
                json={
                    "name": f"load-{index}",
                    "accepted_client_ca": generate_ca(f"load {index}").cert_pem.decode(),
                },
            )
            created.raise_for_status()
            created_pairs.append((tenant.api_key, created.json()["namespace"]["id"]))
    return created_pairs


async def run(
    args: argparse.Namespace, stratus: StratusUp, accounts: list[tuple[str, str]]
) -> dict[str, Any]:
    gateways = [start_gateway(stratus, index) for index in range(1, args.gateways + 1)]
    hogs = start_hogs(args.hogs, args.seconds + 30)
    load = Load()
    try:
        deadline = time.monotonic() + args.seconds
        started = time.monotonic()
        await asyncio.gather(
            *(
                api_client(
                    load,
                    stratus.api_url + "/api/v1",
                    *accounts[index % len(accounts)],
                    index,
                    deadline,
                )
                for index in range(args.clients)
            )
        )
        elapsed = time.monotonic() - started
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
        for gateway in gateways:
            gateway.terminate()
        for gateway in gateways:
            try:
                gateway.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gateway.kill()
    statuses: Counter[int] = Counter()
    for counter in load.statuses.values():
        statuses.update(counter)
    logs = stratus.data_dir / "logs"
    return {
        "clients": args.clients,
        "extra_gateways": args.gateways,
        "cpu_hogs": args.hogs,
        "seconds": round(elapsed, 1),
        "requests": sum(statuses.values()),
        "requests_per_second": round(sum(statuses.values()) / elapsed, 1),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        "server_errors_5xx": sum(count for code, count in statuses.items() if code >= 500),
        "transport_errors": dict(load.transport_errors),
        "kinds": {
            kind: {
                **percentiles(samples),
                "statuses": {str(c): n for c, n in sorted(load.statuses[kind].items())},
            }
            for kind, samples in sorted(load.latencies.items())
        },
        "database_is_locked_lines": {
            "api.log": locked_lines(logs / "api.log"),
            "worker.log": locked_lines(logs / "worker.log"),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--hogs", type=int, default=0, help="CPU-burning processes meanwhile")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stratus-api-load-") as tmp:
        stratus = StratusUp(Path(tmp) / "data", free_port(), free_port())
        stratus.start()
        try:
            accounts = accounts_with_namespaces(stratus, args.accounts)
            result = asyncio.run(run(args, stratus, accounts))
        finally:
            stratus.stop()
        if args.keep:
            kept = Path(tempfile.mkdtemp(prefix="stratus-api-load-kept-"))
            subprocess.run(["cp", "-a", str(stratus.data_dir / "logs"), str(kept)], check=False)
            result["kept_logs"] = str(kept)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
