"""Unauthenticated large bodies against the API: how much memory does the API spend on them?

Run: ``.venv/bin/python bench/api_body_limit.py`` (defaults: 4 clients, 200 MB each). Prints
one JSON document on stdout.

Starts the API alone (``python -m controlplane.app``, SQLite in a temporary data dir, no
worker, gateway or cells) on a free 127.0.0.1 port, then ``--clients`` concurrent clients each
POST ``--megabytes`` MB to ``/api/v1/namespaces`` without credentials, as fast as loopback
takes it: with ``--mode content-length`` the size is declared up front, with ``--mode chunked``
it is not (``Transfer-Encoding: chunked``). The API's resident set size is sampled from
``/proc/<pid>/status`` every 20 ms from before the first byte until every client has its
answer. Reported: the RSS before, the peak, each client's status, bytes it managed to send,
and the time to its answer. Run it against an older checkout (``PYTHONPATH=<checkout>``) for
the figure before the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CHUNK = 256 * 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the API exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not start")


def _client(port: int, size: int, mode: str, result: dict[str, Any]) -> None:
    started = time.perf_counter()
    sent = 0
    head = "POST /api/v1/namespaces HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
    if mode == "chunked":
        head += "Transfer-Encoding: chunked\r\n\r\n"
    else:
        head += f"Content-Length: {size}\r\n\r\n"
    chunk = b"x" * CHUNK
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(head.encode())
        try:
            while sent < size:
                piece = chunk[: min(CHUNK, size - sent)]
                if mode == "chunked":
                    sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                else:
                    sock.sendall(piece)
                sent += len(piece)
            if mode == "chunked":
                sock.sendall(b"0\r\n\r\n")
        except OSError as error:
            result["send_error"] = type(error).__name__
        sock.settimeout(120)
        answer = b""
        try:
            while b"\r\n" not in answer:
                data = sock.recv(4096)
                if not data:
                    break
                answer += data
        except OSError as error:
            result["recv_error"] = type(error).__name__
    result["status"] = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    result["bytes_sent"] = sent
    result["seconds"] = round(time.perf_counter() - started, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--mode", choices=("content-length", "chunked"), default="content-length")
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="stratus-bench-") as data_dir:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRATUS_")}
        env |= {
            "STRATUS_DATA_DIR": data_dir,
            "STRATUS_API_PORT": str(port),
            "STRATUS_SYSTEM_CELL_ADDRESS": f"127.0.0.1:{_free_port()}",
            "STRATUS_LOG_LEVEL": "WARNING",
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "controlplane.app"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(port, process)
            rss_before = _rss_bytes(process.pid)
            peak = rss_before
            results: list[dict[str, Any]] = [{} for _ in range(args.clients)]
            threads = [
                threading.Thread(
                    target=_client, args=(port, args.megabytes * 1_000_000, args.mode, result)
                )
                for result in results
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads):
                peak = max(peak, _rss_bytes(process.pid))
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            rss_after = _rss_bytes(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
    print(
        json.dumps(
            {
                "clients": args.clients,
                "megabytes_each": args.megabytes,
                "mode": args.mode,
                "api_rss_before_mb": round(rss_before / 2**20, 1),
                "api_rss_peak_mb": round(peak / 2**20, 1),
                "api_rss_after_mb": round(rss_after / 2**20, 1),
                "seconds": round(elapsed, 2),
                "answers": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
