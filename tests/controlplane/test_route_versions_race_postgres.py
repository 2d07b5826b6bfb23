"""Route-table versions under two real processes on one PostgreSQL database: publishes and
removals made at the same moment each take a version of their own, in commit order, and the
final table holds every change (the gateways' ``If-None-Match`` polls rely on both)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import select
from support import processes_ready

from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.models import GatewayRoute

PROCESS = Path(__file__).with_name("route_publish_process.py")
ROOT = Path(__file__).resolve().parents[2]
STEPS = 30


async def _race(pg_url: str, go: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(PROCESS), pg_url, str(n), str(STEPS), str(go), env=env,
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
    return [json.loads(out) for out, _ in outputs]


async def test_concurrent_publishes_take_distinct_increasing_versions(
    pg_url: str, tmp_path: Path
) -> None:
    """Two processes publish 30 routes each, both publish three shared routes with contents of
    their own, and remove some of theirs, all at once. Every committed change has a version no
    other change has; each process sees its versions strictly increase; the final table holds
    each route as its latest change left it, at that change's version, and the table's version
    is the latest change's."""
    reports = await _race(pg_url, tmp_path / "go")
    changes = [change for report in reports for change in report["changes"]]
    assert len(changes) == 2 * (STEPS * 2 + STEPS // 3)
    versions = Counter(change["version"] for change in changes)
    assert [v for v, n in versions.items() if n > 1] == [], "two changes share a version"
    for report in reports:
        mine = [change["version"] for change in report["changes"]]
        assert mine == sorted(mine), "a process's versions went backwards"
    latest: dict[str, dict[str, Any]] = {}
    for change in sorted(changes, key=lambda change: change["version"]):
        latest[change["namespace"]] = change
    engine = create_engine(pg_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = {row.namespace_id: row for row in await session.scalars(select(GatewayRoute))}
    finally:
        await engine.dispose()
    assert sorted(rows) == sorted(latest)
    for namespace_id, change in latest.items():
        row = rows[namespace_id]
        assert row.version == change["version"], namespace_id
        assert row.removed == (change["kind"] == "unpublish"), namespace_id
        if change["kind"] == "publish":
            assert row.requests_per_second == change["rps"], namespace_id
    assert max(row.version for row in rows.values()) == max(versions)
    # The shared routes were really contended: both processes changed each of them.
    for shared in ("shared-0.racers", "shared-1.racers", "shared-2.racers"):
        rps = {change["rps"] // 1000 for change in changes if change["namespace"] == shared}
        assert rps == {1, 2}
