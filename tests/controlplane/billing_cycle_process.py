"""One billing-cycle process of the two-process finalization race (test_billing_race_postgres):
waits for the go file, then runs the cycle until it commits, retrying when it loses a race to
the other process (as the worker's next cycle would); prints what it finalized as JSON."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from controlplane.config import Settings
from controlplane.invoices.cycle import run_cycle
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.pricing import load_pricing


async def main(url: str, now: dt.datetime, go: Path) -> None:
    pricing = load_pricing(Settings())
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    while not go.exists():
        await asyncio.sleep(0.005)
    conflicts = 0
    try:
        while True:
            try:
                async with unit_of_work(sessions) as session:
                    report = await run_cycle(session, pricing, now=now)
                break
            except (StaleDataError, DBAPIError):
                conflicts += 1
                if conflicts > 50:
                    raise
    finally:
        await engine.dispose()
    finalized = [[account, month.isoformat()] for account, month in report.finalized]
    print(json.dumps({"finalized": finalized, "conflicts": conflicts}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], dt.datetime.fromisoformat(sys.argv[2]), Path(sys.argv[3])))
