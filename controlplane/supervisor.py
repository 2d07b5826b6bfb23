"""``stratus up``: every Stratus process under one foreground supervisor.

Children: the system cell (the control plane's own Temporal), the API, the control plane's
worker and the gateway. A child that dies is restarted with backoff; the supervisor is the one
watcher of the system cell (a crashed system cell is started again with backoff, and reported
in ``cell_health`` when it keeps failing); the worker watches the account cells. Ctrl-C
(SIGINT) or SIGTERM stops the children, then every cell, within ``SHUTDOWN_BUDGET_SECONDS``.
Children get SIGKILL if the supervisor itself is killed (``PR_SET_PDEATHSIG``), so a crashed
supervisor never leaves an API or gateway holding ports; cells run in their own sessions and
are adopted again by the next ``stratus up``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from pydantic_settings import BaseSettings

from billing import PriceBookError
from controlplane.bootstrap import GatewayPki, bootstrap
from controlplane.cells.provider import system_cell_provider
from controlplane.config import (
    SYSTEM_CELL_DYNAMIC_CONFIG,
    ApiSettings,
    SupervisorSettings,
    WorkerSettings,
    settings_environment,
    settings_for,
)
from controlplane.kit.files import make_private
from controlplane.pricing import load_pricing
from dataplane.cells import CellEndpoint, CellWatcher
from dataplane.gateway import GatewaySettings, gateway_serving

logger = logging.getLogger("stratus.supervisor")
SYSTEM_CELL_ID = "system"
SYSTEM_CELL_PLAINTEXT: dict[str, object] = {
    "system_cell_tls_ca": None,
    "system_cell_tls_cert": None,
    "system_cell_tls_key": None,
    "system_cell_server_name": "",
}
_COUNTER_PUBLISH_LAG_SECONDS = 1.5
_PR_SET_PDEATHSIG = 1
# Ctrl-C under load ends within this: children get SIGTERM then SIGKILL, the final scrape and
# the cells' SIGTERM get what is left (and cells SIGKILL at the end).
SHUTDOWN_BUDGET_SECONDS = 30.0
_CHILDREN_STOP_SECONDS = 10.0
_FINAL_METERING_SECONDS = 8.0
_CELL_STOP_SECONDS = 8.0


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _free_port(host: str) -> int:
    """A port free on ``host`` now: where the gateway's metrics listen unless configured."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    name: str
    module: str
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    pid_path: Path | None = field(default=None)


class Supervisor:
    def __init__(self, settings: SupervisorSettings) -> None:
        self.settings = settings
        # The system cell's provider, local whatever STRATUS_CELL_PROVIDER says (that setting is
        # the worker's, for account cells); it also stops every local cell when Stratus stops.
        self.provider = system_cell_provider(
            settings, stop_timeout=_CELL_STOP_SECONDS, dynamic_config=SYSTEM_CELL_DYNAMIC_CONFIG
        )
        self.run_dir = settings.resolved_data_dir / "run"
        self.children: list[Child] = []
        self._stopping = asyncio.Event()
        self._system_cell_watch: asyncio.Task[None] | None = None
        self._gateway_ca: Path | None = None

    def children_settings(
        self, pki: GatewayPki, operator_key: str, system_address: str
    ) -> tuple[ApiSettings, WorkerSettings, GatewaySettings]:
        """Each child's whole settings: the operator's, with what the supervisor assigns (the
        system cell's address, the gateway's certificates and its key to the API)."""
        s = self.settings
        # The system cell is this supervisor's own, on loopback: plaintext, whatever TLS to a
        # system cluster the settings name (that is for roles run with `stratus serve`).
        assigned = {
            "data_dir": s.resolved_data_dir,
            "system_cell_address": system_address,
            **SYSTEM_CELL_PLAINTEXT,
        }
        # The gateway's own knobs (limits, id, metrics, ...) come from STRATUS_GATEWAY_*.
        gateway = GatewaySettings(
            host=s.gateway_host,
            port=s.gateway_port,
            domain=s.gateway_domain,
            api_key_port=s.gateway_api_key_port,
            cert=pki.server_cert,
            key=pki.server_key,
            ca=pki.ca_cert,
            ca_key=pki.ca_key,
            api_url=s.api_url,
            api_key=operator_key,
            otel_exporter=s.otel_exporter,
            otel_exporter_otlp_endpoint=s.otel_exporter_otlp_endpoint,
            otel_exporter_otlp_headers=s.otel_exporter_otlp_headers,
            otel_exporter_otlp_protocol=s.otel_exporter_otlp_protocol,
            log_format=s.log_format,
        )
        if not gateway.metrics_port:
            gateway = gateway.model_copy(update={"metrics_port": _free_port(gateway.metrics_host)})
        return (
            settings_for(ApiSettings, s, **assigned),
            settings_for(WorkerSettings, s, **assigned),
            gateway,
        )

    @staticmethod
    def _child_env(settings: BaseSettings) -> dict[str, str]:
        """The supervisor's environment without its STRATUS_* variables, and the child's whole
        settings as the variables it reads."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
        env.update(settings_environment(settings))
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def _spawn(self, child: Child) -> None:
        log = open(child.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            child.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                child.module,
                env=child.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        child.started_at = time.monotonic()
        child.pid_path = self.run_dir / f"{child.name}.pid"
        child.pid_path.write_text(str(child.process.pid))
        logger.info("started %s (pid %s)", child.name, child.process.pid)

    async def _watch(self, child: Child) -> None:
        while not self._stopping.is_set():
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping.is_set():
                return
            # Back off when a child keeps crashing right after start.
            quick = time.monotonic() - child.started_at < 10
            child.restarts = child.restarts + 1 if quick else 0
            delay = min(30.0, 0.5 * 2 ** min(child.restarts, 6))
            logger.warning(
                "%s exited with %s; restarting in %.1fs (log: %s)",
                child.name,
                code,
                delay,
                child.log_path,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                return
            await self._spawn(child)

    async def _watch_system_cell(self, cell: CellEndpoint) -> None:
        """The system cell's one watcher: restart it with backoff, record its health."""
        from controlplane.cells.keeper import HealthRecorder, restart_policy
        from controlplane.kit.db import create_engine, create_sessionmaker

        watcher = CellWatcher(self.provider, policy=restart_policy(self.settings))
        engine = create_engine(self.settings.sqlalchemy_url)
        recorder = HealthRecorder(create_sessionmaker(engine))
        try:
            while not self._stopping.is_set():
                try:
                    await recorder.record(await watcher.check([cell]))
                except Exception:
                    logger.exception("watching the system cell failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), self.settings.cell_watch_interval_seconds
                    )
        finally:
            await watcher.aclose()
            await engine.dispose()

    async def _gateway_ready(self) -> bool:
        """The gateway's health check answers SERVING (it has applied a route table), asked on
        its API-key endpoint; with that endpoint disabled, the mTLS listener accepts."""
        s = self.settings
        if s.gateway_api_key_port:
            assert self._gateway_ca is not None
            ca_pem = self._gateway_ca.read_bytes()
            return await gateway_serving(s.gateway_host, s.gateway_api_key_port, ca_pem=ca_pem)
        try:
            _, writer = await asyncio.open_connection(s.gateway_host, s.gateway_port)
        except OSError:
            return False
        writer.close()
        return True

    async def _operator_sign_in_link(self, operator_key: str) -> str:
        """A one-time link that signs the operator into the console, asked of the API with the
        operator key like any client would (so it is audited as console.sign_in_link.create).
        A new one each start; a failure is told in the banner, never fatal."""
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:
                response = await http.post(
                    f"{self.settings.api_url}/api/v1/auth/console-link",
                    headers={"authorization": f"Bearer {operator_key}"},
                )
                response.raise_for_status()
                body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            logger.warning("could not create the operator's console link: %s", error)
            return "(no link: run `stratus console` with the operator key)"
        expires_at = str(body["expires_at"])[11:16]
        return f"{body['url']}   (operator sign-in, once, until {expires_at} UTC)"

    async def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        api_ok = gateway_ok = False
        async with httpx.AsyncClient(timeout=2.0) as http:
            while time.monotonic() < deadline:
                for child in self.children:
                    if child.process is not None and child.process.returncode is not None:
                        tail = child.log_path.read_text(errors="replace")[-3000:]
                        raise RuntimeError(f"{child.name} exited during start-up:\n{tail}")
                if not api_ok:
                    with contextlib.suppress(httpx.HTTPError):
                        api_ok = (await http.get(f"{self.settings.api_url}/healthz")).is_success
                if not gateway_ok:
                    gateway_ok = await self._gateway_ready()
                if api_ok and gateway_ok:
                    return
                await asyncio.sleep(0.1)
        raise RuntimeError("Stratus did not become ready in time; see logs in " + str(self.run_dir))

    async def run(self) -> int:
        s = self.settings
        # Before anything is written: the database, its WAL, logs and cells' files are 0600.
        make_private(s.resolved_data_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        lock_file = open(self.run_dir / "supervisor.lock", "w")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"stratus up is already running on {s.resolved_data_dir}", file=sys.stderr)
            return 1
        try:
            load_pricing(s)
        except PriceBookError as error:
            # Refuse before any process or cell starts: nothing could be billed correctly.
            print(f"stratus up: refusing the price book: {error}", file=sys.stderr)
            return 2
        (self.run_dir / "supervisor.pid").write_text(str(os.getpid()))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        try:
            operator_key_path, pki = await bootstrap(s)
            self._gateway_ca = pki.ca_cert
            # Provisioned once per data dir: its address stays the same across restarts.
            system_cell = await self.provider.provision(SYSTEM_CELL_ID)
            await self.provider.start(system_cell)
            system_address = system_cell.grpc_address
            api, worker, gateway = self.children_settings(
                pki, operator_key_path.read_text().strip(), system_address
            )
            logs = s.resolved_data_dir / "logs"
            logs.mkdir(exist_ok=True)
            self.children = [
                Child("api", "controlplane.app", self._child_env(api), logs / "api.log"),
                Child(
                    "worker", "controlplane.worker", self._child_env(worker), logs / "worker.log"
                ),
                Child(
                    "gateway", "dataplane.gateway", self._child_env(gateway), logs / "gateway.log"
                ),
            ]
            self._system_cell_watch = asyncio.create_task(self._watch_system_cell(system_cell))
            for child in self.children:
                await self._spawn(child)
            await self._wait_ready()
            watchers = [asyncio.create_task(self._watch(c)) for c in self.children]
            operator_link = await self._operator_sign_in_link(operator_key_path.read_text().strip())
            print(
                "Stratus is up.\n"
                f"  API:            {s.api_url}/api/v1   (OpenAPI: {s.api_url}/docs)\n"
                f"  Console:        {s.public_base_url}/   (sign in: `stratus console` prints "
                "a one-time link for your API key)\n"
                f"  Operator link:  {operator_link}\n"
                f"  Gateway:        {s.gateway_host}:{s.gateway_port}   (mTLS, TLS server name "
                f"<namespace id>.{s.gateway_domain}; metrics: "
                f"http://{gateway.metrics_host}:{gateway.metrics_port}/metrics)\n"
                f"  API-key workers: {s.gateway_host}:{s.gateway_api_key_port}   "
                "(TLS, authorization: Bearer <api key>)\n"
                f"  Operator key:   {operator_key_path}\n"
                f"  Gateway CA:     {pki.ca_cert}\n"
                f"  System cell:    {system_address}\n"
                f"  Data dir:       {s.resolved_data_dir}\n"
                "Press Ctrl-C to stop.",
                flush=True,
            )
            await self._stopping.wait()
            for watcher in watchers:
                watcher.cancel()
            return 0
        finally:
            await self._shutdown()
            lock_file.close()

    async def _final_metering(self) -> None:
        """Scrape every cell once more before it stops: its counters live in memory, so what
        was counted since the last scrape would otherwise be lost."""
        from controlplane.kit.db import create_engine, create_sessionmaker
        from controlplane.worker import meter_once

        engine = create_engine(self.settings.sqlalchemy_url)
        try:
            sessionmaker = create_sessionmaker(engine)
            await meter_once(sessionmaker)
            # Temporal publishes its counters about a second late; a second scrape after
            # that catches the last increments (scrapes are deltas, so twice is safe).
            await asyncio.sleep(_COUNTER_PUBLISH_LAG_SECONDS)
            await meter_once(sessionmaker)
        except Exception:
            logger.warning("final metering scrape failed", exc_info=True)
        finally:
            await engine.dispose()

    async def _shutdown(self) -> None:
        started = time.monotonic()
        self._stopping.set()
        print("Stopping Stratus...", flush=True)
        if self._system_cell_watch is not None:
            # Stop watching before stopping: the watcher must not start the cell again.
            await asyncio.gather(self._system_cell_watch, return_exceptions=True)
        # Gateway first (stop taking traffic), then the worker (it watches the account cells),
        # then the API, all within _CHILDREN_STOP_SECONDS.
        children_deadline = started + _CHILDREN_STOP_SECONDS
        for child in reversed(self.children):
            process = child.process
            if process is None or process.returncode is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            grace = max(0.5, children_deadline - time.monotonic())
            try:
                await asyncio.wait_for(process.wait(), grace)
            except TimeoutError:
                logger.warning("%s did not stop in %.1fs; killing it", child.name, grace)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
            if child.pid_path is not None:
                child.pid_path.unlink(missing_ok=True)
        try:
            await asyncio.wait_for(self._final_metering(), _FINAL_METERING_SECONDS)
        except TimeoutError:
            logger.warning(
                "final metering scrape took over %.0fs; skipped", _FINAL_METERING_SECONDS
            )
        cells = self.provider.known_cells()
        await asyncio.gather(*(self.provider.stop(cell_id) for cell_id in cells))
        (self.run_dir / "supervisor.pid").unlink(missing_ok=True)
        print(
            f"Stopped {len(self.children)} processes and {len(cells)} cells in "
            f"{time.monotonic() - started:.1f}s.",
            flush=True,
        )


def up(settings: SupervisorSettings) -> int:
    from controlplane.kit.telemetry import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(Supervisor(settings).run())
