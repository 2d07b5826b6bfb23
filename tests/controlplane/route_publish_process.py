"""One process of the route-table race (test_route_versions_race_postgres): connects, says it is
ready, waits for the go file, then publishes and unpublishes routes, each change in its own
transaction as the worker's activities make them, retrying a change that loses a race to the
other process (as Temporal retries the activity); prints every committed change as JSON."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm.exc import StaleDataError

from controlplane.gateway_routes import service as routes
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from dataplane.gateway import RouteEntry

SHARED = 3  # namespaces both processes publish (each with contents of its own)


def entry(namespace_id: str, requests_per_second: int) -> RouteEntry:
    return RouteEntry(
        namespace_id=namespace_id,
        cell_address="127.0.0.1:7233",
        accepted_client_ca="-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        requests_per_second=requests_per_second,
    )


async def main(url: str, process: int, steps: int, go: Path) -> None:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    changes: list[dict[str, object]] = []
    conflicts = 0

    async def change(kind: str, namespace_id: str, requests_per_second: int = 0) -> None:
        nonlocal conflicts
        while True:
            try:
                async with unit_of_work(sessions) as session:
                    if kind == "publish":
                        version = await routes.publish(
                            session, entry(namespace_id, requests_per_second)
                        )
                    else:
                        version = await routes.unpublish(session, namespace_id)
                break
            except (StaleDataError, DBAPIError):
                conflicts += 1
                if conflicts > 10 * steps:
                    raise
        record = {"kind": kind, "namespace": namespace_id, "version": version}
        changes.append(record | {"rps": requests_per_second})

    async with sessions() as session:  # connected before the start, as a worker would be
        await session.execute(text("SELECT 1"))
    go.with_name(f"ready-{process}").touch()
    while not go.exists():
        await asyncio.sleep(0.001)
    try:
        for step in range(steps):
            own = f"own-{process}-{step}.racers"
            await change("publish", own, 1 + step)
            # Contents no other change has: a change lost to the other process shows.
            await change("publish", f"shared-{step % SHARED}.racers", 1000 * (process + 1) + step)
            if step % 3 == 2:
                await change("unpublish", f"own-{process}-{step - 1}.racers")
    finally:
        await engine.dispose()
    print(json.dumps({"changes": changes, "conflicts": conflicts}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])))
