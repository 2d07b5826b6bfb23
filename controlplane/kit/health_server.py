"""A process's liveness and readiness over plain HTTP (``GET /healthz``, ``GET /readyz``) for
processes that serve no HTTP of their own (the control plane's worker)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}


class HealthServer:
    """Answers ``/healthz`` 200 while the process runs and ``/readyz`` 200 while ``ready()``
    is true, else 503; every answer is a small JSON object."""

    def __init__(self, ready: Callable[[], bool]) -> None:
        self._ready = ready
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._answer, host, port)

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            parts = request.split(b" ", 2)
            path = parts[1].decode("ascii", "replace") if len(parts) > 1 else ""
            if path == "/healthz":
                status, body = 200, {"status": "ok"}
            elif path == "/readyz":
                ready = self._ready()
                status, body = (
                    (200, {"status": "ready"}) if ready else (503, {"status": "not ready"})
                )
            else:
                status, body = 404, {"status": "not found"}
            payload = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
