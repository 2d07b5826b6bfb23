"""One process of the meter-cursor race (test_meter_race_postgres): connects, says it is ready,
waits for the go file, then runs one action-meter scrape of the given cells as the
``meter-actions`` periodic job does (``Meter.scrape_once`` over the usage store); prints what it
added and which cells it gave up on as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
from sqlalchemy import text

from billing import Meter
from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.usage.repository import usage_unit_of_work

# Small batches: many short transactions per cell, so the two meters' writes interleave.
BATCH_NAMESPACES = 10


async def main(url: str, process: int, cells: list[tuple[str, str]], go: Path) -> None:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    try:
        async with sessions() as session:  # connected before the start, as a worker would be
            await session.execute(text("SELECT 1"))
        go.with_name(f"ready-{process}").touch()
        while not go.exists():
            await asyncio.sleep(0.001)
        async with httpx.AsyncClient(timeout=60) as http:
            meter = Meter(http, batch_namespaces=BATCH_NAMESPACES)
            report = await meter.scrape_once(usage_unit_of_work(sessions), cells)
    finally:
        await engine.dispose()
    added = [
        [namespace_id, kind, quantity] for (namespace_id, kind), quantity in report.added.items()
    ]
    print(json.dumps({"added": added, "failed": report.failed}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), Path(sys.argv[4])))
