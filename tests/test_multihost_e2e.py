"""Stratus on several hosts, simulated with network namespaces joined by veth pairs to a bridge
(infra/netns.py): a database host (PostgreSQL), a system-cluster host, a control-plane host (API
and worker), two gateway hosts, two cluster hosts and a tenant host.

Each cluster host (and the system cluster's) runs a Temporal dev server on its own loopback,
reachable only through nginx terminating mTLS on the host's address (``ssl_verify_client on``);
the operator registers the two clusters as external cells, cell1 shared and cell2 dedicated.
Two accounts: A's ``orders`` and B's ``billing`` on the shared cell, B's ``ledger`` on the
dedicated one. Real temporalio workers on the tenant host reach both gateways by their addresses
(TLS server name ``<namespace id>.<domain>``). Every role listens only on its host's address or
loopback. Needs root (``ip netns add``); skipped with the reason elsewhere.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import STRATUS, wait_until

from auth import generate_ca, generate_leaf
from infra.netns import Host, Network, simulated_network, unavailable_reason

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent
SERVICES = str(TESTS / "multihost_services.py")
TENANT_AGENT = str(TESTS / "multihost_tenant.py")
HOSTS = ("db", "system", "cp", "gw1", "gw2", "cell1", "cell2", "tenant")
API_PORT, WORKER_HEALTH_PORT, SHARED_PLACEMENT_API_PORT = 8080, 8081, 8082
GATEWAY_PORT, GATEWAY_KEY_PORT = 7233, 7234
# Workflows each namespace runs in each phase (counted exactly afterwards).
BATCH = 4


def _clean_env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
    return env | variables


@pytest.fixture
def network() -> Iterator[Network]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"multi-host test needs network namespaces: {reason}")
    with simulated_network(HOSTS) as built:
        yield built


def _start_service(host: Host, kind: str, directory: Path) -> None:
    directory.mkdir()
    host.run(
        [sys.executable, SERVICES, kind, host.address, str(directory)],
        log=directory / "service.log",
        env=_clean_env(),
    )


def _ready(directory: Path, host: Host) -> dict[str, str]:
    def ready() -> bool:
        if any(process.poll() is not None for process in host.processes):
            log = (directory / "service.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"service on {host.name} exited:\n{log}")
        return (directory / "ready.json").exists()

    wait_until(ready, 120)
    document: dict[str, str] = json.loads((directory / "ready.json").read_text())
    return document


def _on_host(address: str, host: Host) -> bool:
    """An address of ``host`` itself: its address on the switch or loopback (IPv4-mapped too)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or str(ip) == host.address


class TenantHost:
    """The agent on the tenant host (tests/multihost_tenant.py), one JSON request a line."""

    def __init__(self, host: Host, log: Path) -> None:
        self.process = host.run(
            [sys.executable, TENANT_AGENT],
            env=_clean_env(PYTHONPATH=f"{TESTS}:{os.environ.get('PYTHONPATH', '')}"),
            log=log,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.log = log

    def ask(self, timeout: float = 120, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if readable else b""
        if not line:
            log = self.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"tenant agent gave no answer to {request['op']}:\n{log}")
        answer: dict[str, Any] = json.loads(line)
        assert "error" not in answer or request["op"] == "http", answer
        return answer


class Installation:
    """What the test drives: the control plane's settings, the tenant agent, the CLI."""

    def __init__(self, network: Network, tmp: Path) -> None:
        self.network, self.tmp = network, tmp
        self.data_dir = tmp / "data"
        self.api_url = f"http://{network['cp'].address}:{API_PORT}"
        self.shared_placement_api_url = (
            f"http://{network['cp'].address}:{SHARED_PLACEMENT_API_PORT}"
        )
        self.tenant = TenantHost(network["tenant"], tmp / "tenant.log")

    def gateway(self, name: str) -> str:
        return f"{self.network[name].address}:{GATEWAY_PORT}"

    @property
    def operator_key(self) -> str:
        return (self.data_dir / "operator.key").read_text().strip()

    def cli(self, *args: str, api_key: str | None = None, api_url: str | None = None) -> Any:
        """``stratus -o json ARGS`` on the tenant host; its JSON answer."""
        env = _clean_env(
            STRATUS_API_URL=api_url or self.api_url, STRATUS_API_KEY=api_key or self.operator_key
        )
        done = self.network["tenant"].check([STRATUS, "-o", "json", *args], env=env)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return json.loads(done.stdout)

    def http_status(self, url: str) -> int | None:
        status: int | None = self.tenant.ask(op="http", url=url)["status"]
        return status


def test_stratus_on_eight_hosts(network: Network, tmp_path: Path) -> None:
    """Every role on its own host, only the hosts' addresses used; workflows of two accounts
    complete on a shared and a dedicated cell through either gateway, counted exactly; a
    gateway host's failure loses no workflow (workers through the other keep running); a cell
    host's failure makes only its namespaces UNAVAILABLE."""
    services = {name: tmp_path / name for name in ("db", "system", "cell1", "cell2")}
    for name, directory in services.items():
        _start_service(network[name], "postgres" if name == "db" else "cell", directory)
    stratus = Installation(network, tmp_path)
    database_url = _ready(services["db"], network["db"])["database_url"]
    system = _ready(services["system"], network["system"])
    control_plane = _clean_env(
        STRATUS_DATA_DIR=str(stratus.data_dir),
        STRATUS_DATABASE_URL=database_url,
        STRATUS_SYSTEM_CELL_ADDRESS=system["address"],
        STRATUS_SYSTEM_CELL_TLS_CA=str(services["system"] / "server-ca.pem"),
        STRATUS_SYSTEM_CELL_TLS_CERT=str(services["system"] / "client.pem"),
        STRATUS_SYSTEM_CELL_TLS_KEY=str(services["system"] / "client.key"),
        STRATUS_SYSTEM_CELL_SERVER_NAME=system["server_name"],
        STRATUS_CELL_PROBE_INTERVAL_SECONDS="1",
        STRATUS_CELL_PROBE_TIMEOUT_SECONDS="1",
    )
    cp = network["cp"]
    bootstrapped = cp.check([STRATUS, "bootstrap"], env=control_plane)
    assert bootstrapped.returncode == 0, bootstrapped.stderr
    api_env = control_plane | {"STRATUS_HOST": cp.address, "STRATUS_API_PORT": str(API_PORT)}
    cp.run([STRATUS, "serve", "api"], env=api_env, log=tmp_path / "api.log")
    # Placement is an API setting: a second replica runs with the shared policy (as the first
    # would once the operator changed the setting and restarted it; this saves the restart).
    cp.run(
        [STRATUS, "serve", "api"],
        env=api_env
        | {
            "STRATUS_API_PORT": str(SHARED_PLACEMENT_API_PORT),
            "STRATUS_CELL_PLACEMENT": "shared",
            "STRATUS_MIGRATE_ON_START": "false",
        },
        log=tmp_path / "api-shared-placement.log",
    )
    cp.run(
        [STRATUS, "serve", "worker"],
        env=control_plane
        | {
            "STRATUS_WORKER_HEALTH_HOST": cp.address,
            "STRATUS_WORKER_HEALTH_PORT": str(WORKER_HEALTH_PORT),
        },
        log=tmp_path / "worker.log",
    )
    pki = stratus.data_dir / "pki"
    for name in ("gw1", "gw2"):
        host = network[name]
        host.run(
            [STRATUS, "serve", "gateway"],
            env=_clean_env(
                STRATUS_GATEWAY_ID=name,
                STRATUS_GATEWAY_HOST=host.address,
                STRATUS_GATEWAY_PORT=str(GATEWAY_PORT),
                STRATUS_GATEWAY_API_KEY_PORT=str(GATEWAY_KEY_PORT),
                STRATUS_GATEWAY_CERT=str(pki / "gateway.pem"),
                STRATUS_GATEWAY_KEY=str(pki / "gateway.key"),
                STRATUS_GATEWAY_CA=str(pki / "gateway-ca.pem"),
                STRATUS_GATEWAY_CA_KEY=str(pki / "gateway-ca.key"),
                STRATUS_GATEWAY_API_URL=stratus.api_url,
                STRATUS_GATEWAY_API_KEY=stratus.operator_key,
            ),
            log=tmp_path / f"{name}.log",
        )
    gateway_ca = str(pki / "gateway-ca.pem")
    for url in (stratus.api_url, stratus.shared_placement_api_url):
        wait_until(lambda url=url: stratus.http_status(url + "/readyz") == 200, 120)
    worker_url = f"http://{cp.address}:{WORKER_HEALTH_PORT}/readyz"
    wait_until(lambda: stratus.http_status(worker_url) == 200, 120)
    for name in ("gw1", "gw2"):
        target = f"{network[name].address}:{GATEWAY_KEY_PORT}"
        wait_until(
            lambda target=target: (
                stratus.tenant.ask(op="health", target=target, ca=gateway_ca)["status"] == "SERVING"
            ),
            60,
        )

    # Every role listens on its host's address or loopback, never on a wildcard address; and
    # nothing of theirs listens in this machine's own namespace.
    host_pids = {pid for host in network.hosts.values() for pid in host.pids()}
    for host in network.hosts.values():
        for listener in host.listeners():
            assert _on_host(listener.address, host), (host.name, listener)
    root = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    assert not [
        line for line in root.splitlines() if any(f"pid={pid}," in line for pid in host_pids)
    ]

    # The operator registers the two clusters as external cells, by their hosts' addresses.
    cell_ids = {
        name: _register_cell(stratus, name, services[name], network[name], placement)
        for name, placement in (("cell1", "shared"), ("cell2", "dedicated"))
    }
    tenants = {name: _new_tenant(stratus, name) for name in ("a", "b")}
    # Dedicated placement (the default) binds B to the free dedicated cell; shared placement
    # packs A's and B's next namespaces on cell1.
    ledger = _create_namespace(stratus, tenants["b"], "ledger")
    shared = stratus.shared_placement_api_url
    orders = _create_namespace(stratus, tenants["a"], "orders", api_url=shared)
    billing = _create_namespace(stratus, tenants["b"], "billing", api_url=shared)
    placed = {
        name: sorted(n["namespace_id"] for n in stratus.cli("cell", "get", cell_id)["namespaces"])
        for name, cell_id in cell_ids.items()
    }
    assert placed == {"cell1": sorted([orders, billing]), "cell2": [ledger]}
    owner = {orders: tenants["a"], billing: tenants["b"], ledger: tenants["b"]}

    def ask(op: str, namespace: str, gateway: str, **request: Any) -> dict[str, Any]:
        tls = owner[namespace]
        return stratus.tenant.ask(
            op=op,
            namespace=namespace,
            target=stratus.gateway(gateway),
            ca=gateway_ca,
            cert=tls["cert"],
            key=tls["key"],
            **request,
        )

    started: dict[str, list[str]] = {namespace: [] for namespace in owner}

    def run_all(
        batches: dict[tuple[str, str], list[str]],
        workflow: str,
        meanwhile: Callable[[], None] | None = None,
    ) -> None:
        """Start every batch (namespace, gateway: workflow ids), do ``meanwhile``, then wait
        for every result through the same gateway."""
        for (namespace, gateway), ids in batches.items():
            ask("start", namespace, gateway, ids=ids, workflow=workflow, task_queue="greetings")
        if meanwhile is not None:
            meanwhile()
        for (namespace, gateway), ids in batches.items():
            answer = ask("results", namespace, gateway, ids=ids, wait_seconds=90)
            assert answer["results"] == {
                workflow_id: f"Hello, {workflow_id}!" for workflow_id in ids
            }
            started[namespace] += ids

    def batches(label: str, gateways: tuple[str, ...]) -> dict[tuple[str, str], list[str]]:
        return {
            (namespace, gateway): [f"{label}-{gateway}-{namespace}-{i}" for i in range(BATCH)]
            for namespace in owner
            for gateway in gateways
        }

    # Workers of every namespace on the tenant host, one through each gateway, same task queue.
    for namespace in owner:
        for gateway in ("gw1", "gw2"):
            ask("worker", namespace, gateway, task_queue="greetings")
    run_all(batches("first", ("gw1", "gw2")), "GreetingWorkflow")

    # Gateway host 1 fails while workflows are in flight (started through gw2, napping on a
    # timer): the workers through gw2 keep running; every workflow completes, each once.
    run_all(batches("nap", ("gw2",)), "NappingGreetingWorkflow", meanwhile=network["gw1"].stop)
    run_all(batches("after-gw1", ("gw2",)), "GreetingWorkflow")
    for namespace, ids in started.items():
        _wait_counted(lambda namespace=namespace: ask("count", namespace, "gw2"), len(ids))

    # Cluster host 1 fails: the namespaces on it (A's and B's) answer UNAVAILABLE through the
    # gateway, without naming the cell; B's namespace on cell2 keeps completing workflows.
    network["cell1"].stop()
    for namespace in (orders, billing):
        wait_until(
            lambda namespace=namespace: (
                ask("describe", namespace, "gw2")["status"] == "UNAVAILABLE"
            ),
            60,
        )
        assert ask("describe", namespace, "gw2") == {
            "status": "UNAVAILABLE",
            "message": f"namespace {namespace} is temporarily unavailable; retry shortly",
        }
    # The operator sees which cell failed: in the gateway's log and in the cells' health.
    gateway_log = (tmp_path / "gw2.log").read_text()
    assert f"cell cell1 ({network['cell1'].address}:" in gateway_log
    wait_until(
        lambda: stratus.cli("cell", "get", cell_ids["cell1"])["health"]["state"] == "unhealthy", 30
    )
    assert stratus.cli("cell", "get", cell_ids["cell2"])["health"]["state"] == "healthy"
    run_all({(ledger, "gw2"): [f"after-cell1-{i}" for i in range(BATCH)]}, "GreetingWorkflow")
    _wait_counted(lambda: ask("count", ledger, "gw2"), len(started[ledger]))
    # Through both failures, nothing on the other hosts exited.
    for name in ("db", "system", "cp", "gw2", "cell2", "tenant"):
        for process in network[name].processes:
            assert process.poll() is None, (name, process.args)


def _register_cell(
    stratus: Installation, name: str, files: Path, host: Host, placement: str
) -> str:
    frontend = _ready(files, host)
    registered = stratus.cli(
        "cell",
        "register",
        "--name",
        name,
        "--frontend",
        frontend["address"],
        "--tls-ca",
        str(files / "server-ca.pem"),
        "--tls-cert",
        str(files / "client.pem"),
        "--tls-key",
        str(files / "client.key"),
        "--server-name",
        frontend["server_name"],
        "--metrics-url",
        frontend["metrics_url"],
        "--max-namespaces",
        "10",
        "--placement",
        placement,
    )
    assert registered["frontend"] == frontend["address"]
    assert registered["tls"] is True
    cell_id: str = registered["id"]
    return cell_id


def _new_tenant(stratus: Installation, name: str) -> dict[str, str]:
    """An account (its owner's API key) and the CA and client certificate of its workers."""
    created = stratus.cli(
        "account", "create", "--name", f"Tenant {name}", "--owner-email", f"owner@{name}.example"
    )
    ca = generate_ca(f"tenant {name} CA")
    client = generate_leaf(ca, f"tenant {name} worker")
    files = {"ca": ca.cert_pem, "cert": client.cert_pem, "key": client.key_pem}
    paths = {}
    for kind, pem in files.items():
        path = stratus.tmp / f"tenant-{name}-{kind}.pem"
        path.write_bytes(pem)
        paths[kind] = str(path)
    return paths | {"api_key": created["owner_api_key"]["token"]}


def _create_namespace(
    stratus: Installation, tenant: dict[str, str], name: str, api_url: str | None = None
) -> str:
    created = stratus.cli(
        "namespace",
        "create",
        "--name",
        name,
        "--ca-cert",
        tenant["ca"],
        "--retention-days",
        "1",
        "--wait",
        api_key=tenant["api_key"],
        api_url=api_url,
    )
    assert created["async_operation"]["state"] == "FULFILLED", created
    namespace_id: str = created["namespace"]["id"]
    return namespace_id


def _wait_counted(count: Callable[[], dict[str, Any]], expected: int) -> None:
    """Until the namespace lists exactly ``expected`` workflows, all completed (visibility is
    written after the fact), and asserts it stays so: none lost, none doubled."""
    wanted = {"completed": expected, "other": 0}
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: count() == wanted, 30)
    assert count() == wanted
