"""Test support: drive a real ``stratus up`` (API, worker, gateway, system cell, local cells) in a
temporary data dir on free 127.0.0.1 ports, and helpers to drive it as users do."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from support_workflows import GreetingWorkflow, compose_greeting
from temporalio.client import Client, TLSConfig
from temporalio.worker import Worker

from auth import KeyPair, generate_ca, generate_leaf
from controlplane.client import StratusClient
from dataplane.gateway import ServerNames

STRATUS = str(Path(sys.executable).parent / "stratus")


# Ports the tests hand out come from a range below the kernel's ephemeral range (32768-60999:
# the ports a bind to 0 or an outgoing connection gets, which Stratus's own processes use), one
# slice per pytest-xdist worker: no two workers, and no Stratus process, can pick the same port
# between a test choosing it and a server binding it.
_PORTS_FIRST = 12000
_PORTS_PER_WORKER = 5000
_ports_handed_out: set[int] = set()
# Each process starts at a random place in its slice: two test runs side by side (or one run
# after another, whose servers left files named by port) rarely meet.
_ports_start = random.randrange(_PORTS_PER_WORKER)


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = worker.removeprefix("gw")
    return int(digits) % 4 if digits.isdigit() else 0


def free_port() -> int:
    """A 127.0.0.1 port nothing is bound to, not handed out before by this process."""
    first = _PORTS_FIRST + _worker_index() * _PORTS_PER_WORKER
    for _ in range(2):
        for offset in range(_PORTS_PER_WORKER):
            port = first + (_ports_start + offset) % _PORTS_PER_WORKER
            if port in _ports_handed_out:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _ports_handed_out.add(port)
            return port
        _ports_handed_out.clear()  # every port handed out once: start again from the first
    raise RuntimeError(f"no free port in {first}-{first + _PORTS_PER_WORKER - 1}")


def free_ports(count: int) -> list[int]:
    """``count`` ports of this worker's range (:func:`free_port`): for ``LocalCellProvider``'s
    ``free_ports``, so a test's cells never take the kernel's ephemeral ports, which an
    outgoing connection can grab before the cell binds them."""
    return [free_port() for _ in range(count)]


async def processes_ready(go: Path, count: int) -> None:
    """Until each of ``count`` racing processes wrote its ``ready-<n>`` file next to ``go`` (it
    is connected and waits for ``go`` to exist, so that all start at once)."""
    while not all(go.with_name(f"ready-{n}").exists() for n in range(count)):
        await asyncio.sleep(0.01)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        return state != "Z"
    return False


@dataclass
class StratusUp:
    """One ``stratus up`` process tree on a data dir."""

    data_dir: Path
    api_port: int
    gateway_port: int
    process: subprocess.Popen[bytes] | None = None
    # Extra STRATUS_* settings for this instance (e.g. OIDC providers).
    extra_env: dict[str, str] = field(default_factory=dict)
    gateway_api_key_port: int = field(default_factory=lambda: free_port())

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def gateway_address(self) -> str:
        return f"localhost:{self.gateway_port}"

    @property
    def gateway_api_key_address(self) -> str:
        return f"localhost:{self.gateway_api_key_port}"

    @property
    def operator_key(self) -> str:
        return (self.data_dir / "operator.key").read_text().strip()

    @property
    def gateway_ca(self) -> bytes:
        return (self.data_dir / "pki" / "gateway-ca.pem").read_bytes()

    @property
    def log_path(self) -> Path:
        return self.data_dir / "up.log"

    @property
    def database_url(self) -> str:
        """The control plane's database: ``STRATUS_DATABASE_URL`` if given, else the SQLite
        file in the data dir."""
        return self.extra_env.get(
            "STRATUS_DATABASE_URL", f"sqlite+aiosqlite:///{self.data_dir / 'stratus.db'}"
        )

    def env(self, api_key: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
        env["STRATUS_API_URL"] = self.api_url
        if api_key:
            env["STRATUS_API_KEY"] = api_key
        return env

    def start(self, timeout: float = 120.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        env = self.env()
        # Faster than the default 10 s (PENDING operations and account deletions advance within
        # seconds), not every second: each run is a workflow on the system cell, and a reconcile
        # a second made an idle Stratus burn ~14% of a core instead of ~6% (a suite worker keeps
        # several up at a time).
        env["STRATUS_RECONCILE_INTERVAL_SECONDS"] = "5"
        env.update(self.extra_env)
        self.process = subprocess.Popen(
            [
                STRATUS,
                "up",
                "--data-dir",
                str(self.data_dir),
                "--api-port",
                str(self.api_port),
                "--gateway-port",
                str(self.gateway_port),
                "--gateway-api-key-port",
                str(self.gateway_api_key_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"stratus up exited:\n{self.log_path.read_text()[-4000:]}")
            if "Stratus is up." in self.log_path.read_text(errors="replace")[offset:]:
                return
            time.sleep(0.1)
        raise RuntimeError(f"stratus up not ready:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> int:
        """Ctrl-C, as a user would; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self.process = None
        return code

    def kill_control_plane(self) -> list[int]:
        """kill -9 the supervisor, API, worker and gateway at once (cells survive, as they
        would a crashed control-plane host's processes)."""
        run = self.data_dir / "run"
        pids = [int((run / f"{name}.pid").read_text()) for name in ("api", "worker", "gateway")]
        assert self.process is not None
        pids.append(self.process.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None
        deadline = time.monotonic() + 10
        while any(_pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        return pids

    def cell_pids(self) -> list[int]:
        pids = []
        for record in (self.data_dir / "cells").glob("*/cell.json"):
            pid = json.loads(record.read_text()).get("pid")
            if pid and _pid_alive(pid):
                pids.append(pid)
        return pids

    def cleanup(self) -> None:
        """Tear everything down at once (SIGKILL): the supervisor and its roles (one process
        group, started by :meth:`start`), then the cells. A graceful stop (final meter scrape,
        each cell stopped in turn) took 5-15 s per instance, and the tests that care how
        Stratus stops call :meth:`stop` themselves."""
        if self.process is not None:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None
        pids = self.cell_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(_pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)

    def operator(self) -> StratusClient:
        return StratusClient(self.api_url, self.operator_key)

    def cli(self, *args: str, api_key: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [STRATUS, *args],
            env=self.env(api_key),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@dataclass
class ApiAlone:
    """The API process alone (``python -m controlplane.app``) on a data dir bootstrapped as
    ``stratus up`` does (schema, operator key), with no worker, gateway or cells: nothing it
    stores is ever acted on, so tests may throw anything at it. Its system cell address is a
    closed port."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def operator_key(self) -> str:
        return (self.data_dir / "operator.key").read_text().strip()

    @property
    def log_path(self) -> Path:
        return self.data_dir / "api.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
        env |= {
            "STRATUS_DATA_DIR": str(self.data_dir),
            "STRATUS_API_PORT": str(self.port),
            "STRATUS_SYSTEM_CELL_ADDRESS": f"127.0.0.1:{free_port()}",
            **self.extra_env,
        }
        return env

    def start(self, timeout: float = 60.0, **popen: object) -> None:
        """Bootstrap the data dir (first time) and start the API; ``popen`` goes to Popen
        (e.g. ``preexec_fn`` to set resource limits on the API process)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not (self.data_dir / "operator.key").exists():
            subprocess.run(
                [sys.executable, "-c", _BOOTSTRAP],
                env=self.env(),
                check=True,
                capture_output=True,
                timeout=120,
            )
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.process = subprocess.Popen(  # type: ignore[call-overload]
            [sys.executable, "-m", "controlplane.app"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            **popen,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited:\n{self.log_path.read_text()[-4000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the API did not start:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None

    def new_tenant(self, name: str) -> str:
        """Create an account through the API; returns its owner's API key."""
        with StratusClient(self.url, self.operator_key) as operator:
            created = operator.create_account(name, f"owner@{name.lower()}.example")
        return created.owner_api_key.token


_BOOTSTRAP = (
    "import asyncio\n"
    "from controlplane.bootstrap import bootstrap\n"
    "from controlplane.config import Settings\n"
    "asyncio.run(bootstrap(Settings()))\n"
)


@dataclass
class Tenant:
    """An account created through the API, with its own CA and a client certificate."""

    account_id: str
    api_key: str
    ca: KeyPair
    client_cert: KeyPair

    def client(self, stratus: StratusUp) -> StratusClient:
        return StratusClient(stratus.api_url, self.api_key)


def new_tenant(stratus: StratusUp, name: str) -> Tenant:
    with stratus.operator() as operator:
        created = operator.create_account(name, f"owner@{name.lower()}.example")
    ca = generate_ca(f"{name} CA")
    return Tenant(
        account_id=created.account.id,
        api_key=created.owner_api_key.token,
        ca=ca,
        client_cert=generate_leaf(ca, f"{name} worker"),
    )


def wait_until(predicate: object, timeout: float = 30.0, interval: float = 0.1) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


def http(stratus: StratusUp, api_key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=stratus.api_url + "/api/v1", headers=headers, timeout=30)


def server_name(namespace_id: str) -> str:
    """The TLS server name that opens a gateway connection for ``namespace_id``."""
    return ServerNames().for_namespace(namespace_id)


def tls_for(stratus: StratusUp, client_cert: KeyPair | None, namespace_id: str) -> TLSConfig:
    """SDK TLS settings for a worker of ``namespace_id`` (named in the TLS server name)."""
    return TLSConfig(
        server_root_ca_cert=stratus.gateway_ca,
        client_cert=client_cert.cert_pem if client_cert else None,
        client_private_key=client_cert.key_pem if client_cert else None,
        domain=server_name(namespace_id),
    )


def gateway_channel_options(namespace_id: str) -> list[tuple[str, str]]:
    """grpc channel options naming ``namespace_id`` in the TLS server name."""
    return [("grpc.ssl_target_name_override", server_name(namespace_id))]


async def run_greeting(
    stratus: StratusUp, namespace_id: str, client_cert: KeyPair, workflow_id: str
) -> str:
    """Connect a real worker and client to the gateway over mTLS and run one workflow."""
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, client_cert, namespace_id),
    )
    task_queue = f"greetings-{workflow_id}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[GreetingWorkflow],
        activities=[compose_greeting],
    ):
        result: str = await client.execute_workflow(
            GreetingWorkflow.run, "Stratus", id=workflow_id, task_queue=task_queue
        )
    return result


def create_active_namespace(stratus: StratusUp, tenant: Tenant, name: str) -> str:
    with tenant.client(stratus) as client:
        created = client.create_namespace(name, tenant.ca.cert_pem.decode(), retention_days=7)
        operation = client.wait_for_operation(
            created.async_operation.id, timeout=120, interval=0.05
        )
        assert operation.state == "FULFILLED", operation.failure_reason
        assert client.get_namespace(created.namespace.id).state == "ACTIVE"
    return created.namespace.id


_VERIFY_LINE = re.compile(
    r'^stratus_api_requests_total\{method="POST",'
    r'route="/api/v1/internal/api-keys/verify",status="(\d+)"\} ([0-9.e+]+)$',
    re.MULTILINE,
)


def api_key_verifications(stratus: StratusUp) -> dict[int, int]:
    """Gateway API-key verifications the control plane answered so far, by HTTP status
    (counted by the API's own ``/metrics``)."""
    text = httpx.get(f"{stratus.api_url}/metrics", timeout=30).text
    return {int(status): int(float(count)) for status, count in _VERIFY_LINE.findall(text)}
