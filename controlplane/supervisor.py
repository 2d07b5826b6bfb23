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
import json
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

from billing import PriceBookError
from controlplane.bootstrap import GatewayPki, bootstrap
from controlplane.config import SYSTEM_CELL_DYNAMIC_CONFIG, Settings
from controlplane.invoices.pricing import load_pricing
from controlplane.kit.files import make_private
from dataplane.cells import CellSpec, CellWatcher, LocalCellProvider

logger = logging.getLogger("stratus.supervisor")
SYSTEM_CELL_ID = "system"
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


def _free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def system_cell_spec(settings: Settings) -> CellSpec:
    """Ports of the system cell are chosen once per data dir and kept."""
    path = settings.resolved_data_dir / "system-cell.json"
    if path.exists():
        ports = json.loads(path.read_text())
    else:
        ports = {"grpc_port": _free_port(), "metrics_port": _free_port(), "http_port": _free_port()}
        path.write_text(json.dumps(ports))
    return CellSpec(SYSTEM_CELL_ID, ports["grpc_port"], ports["metrics_port"], ports["http_port"])


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
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.provider = LocalCellProvider(
            settings.cells_dir,
            stop_timeout=_CELL_STOP_SECONDS,
            dynamic_config=SYSTEM_CELL_DYNAMIC_CONFIG,
        )
        self.run_dir = settings.resolved_data_dir / "run"
        self.children: list[Child] = []
        self._stopping = asyncio.Event()
        self.gateway_metrics_port = _free_port()
        self._system_cell_watch: asyncio.Task[None] | None = None

    def _child_env(self, pki: GatewayPki, operator_key: str, system_address: str) -> dict[str, str]:
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
        env.update(
            {
                "STRATUS_DATA_DIR": str(s.resolved_data_dir),
                "STRATUS_HOST": s.host,
                "STRATUS_API_PORT": str(s.api_port),
                "STRATUS_SYSTEM_CELL_ADDRESS": system_address,
                "STRATUS_LOG_LEVEL": s.log_level,
                "STRATUS_OTEL_EXPORTER": s.otel_exporter,
                "STRATUS_API_URL": s.api_url,
                "STRATUS_GATEWAY_HOST": s.gateway_host,
                "STRATUS_GATEWAY_PORT": str(s.gateway_port),
                "STRATUS_GATEWAY_CERT": str(pki.server_cert),
                "STRATUS_GATEWAY_KEY": str(pki.server_key),
                "STRATUS_GATEWAY_CA": str(pki.ca_cert),
                "STRATUS_GATEWAY_CA_KEY": str(pki.ca_key),
                "STRATUS_GATEWAY_DOMAIN": s.gateway_domain,
                "STRATUS_GATEWAY_API_KEY": operator_key,
                "STRATUS_GATEWAY_METRICS_PORT": str(self.gateway_metrics_port),
                "STRATUS_GATEWAY_API_KEY_PORT": str(s.gateway_api_key_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if s.database_url:
            env["STRATUS_DATABASE_URL"] = s.database_url
        # Metering and billing settings reach the worker and the API as the operator gave them.
        env["STRATUS_METERING_INTERVAL_SECONDS"] = str(s.metering_interval_seconds)
        env["STRATUS_STORAGE_METERING_INTERVAL_SECONDS"] = str(s.storage_metering_interval_seconds)
        env["STRATUS_PRICE_BOOK"] = str(s.price_book_path)
        env["STRATUS_DEFAULT_PLAN"] = s.default_plan
        env["STRATUS_INVOICE_GRACE_HOURS"] = str(s.invoice_grace_hours)
        env["STRATUS_BILLING_INTERVAL_SECONDS"] = str(s.billing_interval_seconds)
        # Cell watching settings reach the worker (account cells) as the operator gave them.
        env["STRATUS_CELL_WATCH_INTERVAL_SECONDS"] = str(s.cell_watch_interval_seconds)
        env["STRATUS_CELL_RESTART_FAILURE_THRESHOLD"] = str(s.cell_restart_failure_threshold)
        env["STRATUS_CELL_RESTART_FAILURE_WINDOW_SECONDS"] = str(
            s.cell_restart_failure_window_seconds
        )
        env["STRATUS_CELL_IDLE_STOP_SECONDS"] = str(s.cell_idle_stop_seconds)
        env["STRATUS_EXPORT_SINK_ALLOWED_NETWORKS"] = json.dumps(
            [str(network) for network in s.export_sink_allowed_networks]
        )
        # Sign-in settings reach the API as the operator gave them.
        env["STRATUS_SESSION_LIFETIME_SECONDS"] = str(s.session_lifetime_seconds)
        if s.public_url:
            env["STRATUS_PUBLIC_URL"] = s.public_url
        if s.oidc_providers:
            env["STRATUS_OIDC_PROVIDERS"] = json.dumps(
                [provider.model_dump(mode="json") for provider in s.oidc_providers]
            )
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

    async def _watch_system_cell(self, spec: CellSpec) -> None:
        """The system cell's one watcher: restart it with backoff, record its health."""
        from controlplane.cells.keeper import HealthRecorder, restart_policy
        from controlplane.kit.db import create_engine, create_sessionmaker

        watcher = CellWatcher(self.provider, policy=restart_policy(self.settings))
        engine = create_engine(self.settings.sqlalchemy_url)
        recorder = HealthRecorder(create_sessionmaker(engine))
        try:
            while not self._stopping.is_set():
                try:
                    await recorder.record(await watcher.check([spec]))
                except Exception:
                    logger.exception("watching the system cell failed; retrying")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._stopping.wait(), self.settings.cell_watch_interval_seconds
                    )
        finally:
            await watcher.aclose()
            await engine.dispose()

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
                    with contextlib.suppress(OSError):
                        _, writer = await asyncio.open_connection(
                            self.settings.gateway_host, self.settings.gateway_port
                        )
                        writer.close()
                        gateway_ok = True
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
            spec = system_cell_spec(s)
            await self.provider.start(spec)
            system_address = self.provider.address(SYSTEM_CELL_ID)
            env = self._child_env(pki, operator_key_path.read_text().strip(), system_address)
            logs = s.resolved_data_dir / "logs"
            logs.mkdir(exist_ok=True)
            self.children = [
                Child("api", "controlplane.app", env, logs / "api.log"),
                Child("worker", "controlplane.worker", env, logs / "worker.log"),
                Child("gateway", "dataplane.gateway", env, logs / "gateway.log"),
            ]
            self._system_cell_watch = asyncio.create_task(self._watch_system_cell(spec))
            for child in self.children:
                await self._spawn(child)
            await self._wait_ready()
            watchers = [asyncio.create_task(self._watch(c)) for c in self.children]
            print(
                "Stratus is up.\n"
                f"  API:            {s.api_url}/api/v1   (OpenAPI: {s.api_url}/docs)\n"
                f"  Gateway:        {s.gateway_host}:{s.gateway_port}   (mTLS, TLS server name "
                f"<namespace id>.{s.gateway_domain}; metrics: "
                f"http://127.0.0.1:{self.gateway_metrics_port}/metrics)\n"
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
            await meter_once(sessionmaker, self.provider)
            # Temporal publishes its counters about a second late; a second scrape after
            # that catches the last increments (scrapes are deltas, so twice is safe).
            await asyncio.sleep(_COUNTER_PUBLISH_LAG_SECONDS)
            await meter_once(sessionmaker, self.provider)
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


def up(settings: Settings) -> int:
    from controlplane.kit.telemetry import configure_logging

    configure_logging(settings.log_level)
    return asyncio.run(Supervisor(settings).run())
