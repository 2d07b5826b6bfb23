"""The action meter's cursors under two real processes on one PostgreSQL database: two
``meter-actions`` runs scraping the same cells at the same moment bill each counter increment
once (each series' cursor advanced once, no usage counted twice). The cells are Prometheus text
served by a small HTTP server of the test's own, which answers each cell's scrape only once both
meters asked for it, so both bill every cell at the same time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections import Counter
from pathlib import Path

import httpx
from sqlalchemy import func, select
from support import processes_ready

from billing import ActionKind, Meter
from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.models import UsageCursor, UsageRecord
from controlplane.usage.repository import usage_unit_of_work

PROCESS = Path(__file__).with_name("meter_scrape_process.py")
ROOT = Path(__file__).resolve().parents[2]
CELLS = 3
NAMESPACES = 40  # per cell
# Billed at weight 1 each, one kind each.
ACTION_TYPES = {
    "grpc_StartWorkflowExecution": ActionKind.WORKFLOW,
    "command_ScheduleActivityTask": ActionKind.ACTIVITY,
}


def _namespace(cell: int, n: int) -> str:
    return f"n{n}-c{cell}.racers"


def _value(cell: int, n: int, action_type: str, scrape: str) -> int:
    """The counter of a series at the seed scrape, and higher at the raced one."""
    base = 7 * n + cell + (3 if action_type.startswith("grpc") else 0)
    return base if scrape == "seed" else 2 * base + 5


def _exposition(cell: int, scrape: str) -> bytes:
    lines = ["# HELP action action", "# TYPE action counter"]
    for n in range(NAMESPACES):
        label = _namespace(cell, n).replace("-", "_").replace(".", "_")
        for action_type in ACTION_TYPES:
            value = _value(cell, n, action_type, scrape)
            lines.append(
                f'action{{action_type="{action_type}",namespace="{label}",'
                f'operation="x",service_name="frontend"}} {value}'
            )
    return ("\n".join(lines) + "\n").encode()


class PairedCells:
    """Serves ``/seed/<cell>`` at once and ``/race/<cell>`` once two scrapes of it arrived."""

    def __init__(self) -> None:
        self.arrived: Counter[str] = Counter()
        self.both: dict[str, asyncio.Event] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        path = request.split(b" ", 2)[1].decode()
        _, scrape, cell = path.split("/")
        if scrape == "race":
            event = self.both.setdefault(path, asyncio.Event())
            self.arrived[path] += 1
            if self.arrived[path] == 2:
                event.set()
            await asyncio.wait_for(event.wait(), 60)
        body = _exposition(int(cell), scrape)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()


async def test_two_meters_at_once_bill_each_increment_once(pg_url: str, tmp_path: Path) -> None:
    """A first scrape sets every series' cursor; then two meter processes scrape the same three
    cells (40 namespaces, 80 series each) at once. Each series' increment since the first
    scrape is added by exactly one of them; every cursor stands at the new counter; each
    namespace's usage is its counter's value, not more."""
    cells = PairedCells()
    server = await asyncio.start_server(cells.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    engine = create_engine(pg_url)
    sessions = create_sessionmaker(engine)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            seeded = await Meter(http).scrape_once(
                usage_unit_of_work(sessions),
                [(f"cell-{cell}", f"{base}/seed/{cell}") for cell in range(CELLS)],
            )
        assert seeded.failed == {}
        raced = [(f"cell-{cell}", f"{base}/race/{cell}") for cell in range(CELLS)]
        go = tmp_path / "go"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable, str(PROCESS), pg_url, str(n), json.dumps(raced), str(go), env=env,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            for n in range(2)
        ]  # fmt: skip
        await asyncio.wait_for(processes_ready(go, 2), 60)
        go.touch()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(process.communicate() for process in processes)), 120
        )
        for process, (_, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, err.decode()
        reports = [json.loads(out) for out, _ in outputs]

        increments = {
            (_namespace(cell, n), str(kind)): _value(cell, n, action_type, "race")
            - _value(cell, n, action_type, "seed")
            for cell in range(CELLS)
            for n in range(NAMESPACES)
            for action_type, kind in ACTION_TYPES.items()
        }
        added = [
            ((namespace_id, kind), quantity)
            for report in reports
            for namespace_id, kind, quantity in report["added"]
        ]
        # Each series' increment added once, by one of the two meters.
        assert Counter(key for key, _ in added) == Counter(increments.keys())
        assert dict(added) == increments
        async with sessions() as session:
            cursors = {
                (cursor.cell_id, cursor.namespace_id, cursor.action_type): cursor.value
                for cursor in await session.scalars(select(UsageCursor))
            }
            usage = {
                (namespace_id, kind): int(total)
                for namespace_id, kind, total in await session.execute(
                    select(
                        UsageRecord.namespace_id, UsageRecord.kind, func.sum(UsageRecord.quantity)
                    ).group_by(UsageRecord.namespace_id, UsageRecord.kind)
                )
            }
        assert cursors == {
            (f"cell-{cell}", _namespace(cell, n), action_type): _value(cell, n, action_type, "race")
            for cell in range(CELLS)
            for n in range(NAMESPACES)
            for action_type in ACTION_TYPES
        }
        assert usage == {
            (_namespace(cell, n), str(kind)): _value(cell, n, action_type, "race")
            for cell in range(CELLS)
            for n in range(NAMESPACES)
            for action_type, kind in ACTION_TYPES.items()
        }
    finally:
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
        await engine.dispose()
