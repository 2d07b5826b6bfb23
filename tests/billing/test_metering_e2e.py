"""`stratus up` meters its cells: work done through the gateway ends up in usage rows, and
stopping Stratus scrapes the cells one last time so nothing counted in memory is lost."""

from __future__ import annotations

from sqlalchemy import func, select
from support import StratusUp, create_active_namespace, new_tenant, run_greeting

from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.models import UsageRecord


async def _usage(stratus: StratusUp, namespace_id: str) -> dict[str, int]:
    engine = create_engine(stratus.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            rows = await session.execute(
                select(UsageRecord.kind, func.sum(UsageRecord.quantity))
                .where(UsageRecord.namespace_id == namespace_id)
                .group_by(UsageRecord.kind)
            )
            return {kind: int(total) for kind, total in rows}
    finally:
        await engine.dispose()


async def test_stopping_stratus_meters_the_work_done(fresh_stratus: StratusUp) -> None:
    """One workflow with one activity through the gateway: exactly one workflow action and one
    activity action, recorded by the final scrape when Stratus stops (the periodic meter runs
    every 60 s, so it has not run yet)."""
    fresh_stratus.start()
    tenant = new_tenant(fresh_stratus, "Metered")
    namespace_id = create_active_namespace(fresh_stratus, tenant, "billed")
    assert await run_greeting(fresh_stratus, namespace_id, tenant.client_cert, "metered") == (
        "Hello, Stratus!"
    )
    assert await _usage(fresh_stratus, namespace_id) == {}
    assert fresh_stratus.stop() == 0
    assert await _usage(fresh_stratus, namespace_id) == {
        "actions.workflow": 1,
        "actions.activity": 1,
    }
