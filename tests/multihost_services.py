"""Services of the multi-host test's hosts, run inside a host (``ip netns exec``) until killed:

- ``cell ADDRESS READY_DIR``: a Temporal dev server on the host's loopback, reachable only
  through an nginx mTLS terminator on ``ADDRESS`` (infra/cell_frontend.py);
- ``postgres ADDRESS READY_DIR``: a private PostgreSQL listening on ``ADDRESS``, with an empty
  database ``stratus``.

When the service answers, its PEM files (cells) are copied into ``READY_DIR`` and
``READY_DIR/ready.json`` is written last (what the test waits for). The test ends a service by
killing every process of its host (a host failure) or with SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc

from dataplane.cells import dev_server_command
from infra.cell_frontend import run_cell_frontend
from infra.postgres import run_postgres

# Ports on the host's own loopback: every host is a network namespace of its own.
CELL_GRPC_PORT = 7233
CELL_METRICS_PORT = 9090
_WORKFLOW_SERVICE = b"temporal.api.workflowservice.v1.WorkflowService"


def _write_ready(directory: Path, document: dict[str, str]) -> None:
    partial = directory / "ready.json.partial"
    partial.write_text(json.dumps(document))
    partial.rename(directory / "ready.json")


def _wait_for_sigterm() -> None:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    stopped.wait()


def _wait_serving(address: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the dev server's WorkflowService answers SERVING to a gRPC health check."""
    request = b"\n" + bytes([len(_WORKFLOW_SERVICE)]) + _WORKFLOW_SERVICE
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"temporal dev server exited {process.returncode}")
            try:
                if check(request, timeout=2) == b"\x08\x01":
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"temporal dev server at {address} not serving")
            time.sleep(0.1)


def run_cell(address: str, ready: Path) -> None:
    server_name = f"{ready.name}.cells.stratus.test"
    loopback = "127.0.0.1"
    args = dev_server_command(
        loopback, CELL_GRPC_PORT, http_port=7243, metrics_port=CELL_METRICS_PORT
    )
    server = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    try:
        _wait_serving(f"{loopback}:{CELL_GRPC_PORT}", server, 60)
        with run_cell_frontend(
            f"{loopback}:{CELL_GRPC_PORT}",
            metrics_upstream=f"{loopback}:{CELL_METRICS_PORT}",
            server_name=server_name,
            listen_host=address,
        ) as frontend:
            for name in ("server-ca.pem", "client-ca.pem", "client.pem", "client.key"):
                shutil.copy(frontend.path(name), ready / name)
            _write_ready(
                ready,
                {
                    "address": frontend.address,
                    "metrics_url": frontend.metrics_url,
                    "server_name": frontend.server_name,
                },
            )
            _wait_for_sigterm()
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)


def run_database(address: str, ready: Path) -> None:
    with run_postgres(listen_host=address) as server:
        _write_ready(ready, {"database_url": server.create_database("stratus")})
        _wait_for_sigterm()


def main(argv: list[str]) -> None:
    kind, address, ready = argv[1], argv[2], Path(argv[3])
    if kind == "cell":
        run_cell(address, ready)
    elif kind == "postgres":
        run_database(address, ready)
    else:
        raise SystemExit(f"unknown service {kind!r}: cell or postgres")


if __name__ == "__main__":
    main(sys.argv)
