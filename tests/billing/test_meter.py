"""The action meter against real cells: a known workload driven by a real worker bills exactly
the actions Temporal counted, once, across repeated scrapes, a scraper restart, a crash between
two write batches, an unreachable cell and a cell restart in the middle of the work; and the
meter never holds the database's write lock while it reads metrics or across batches."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from cell_support import register_namespace
from metering_workflows import OrderWorkflow, ReceiptWorkflow, charge
from sqlalchemy import URL, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from support import free_port, free_ports
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from auth import generate_ca
from billing import ActionKind, Meter, MeteredCell, read_cell_counters
from controlplane.models import UsageCursor, UsageRecord
from controlplane.usage.repository import usage_unit_of_work
from dataplane.cells import CellEndpoint, LocalCellProvider, temporal_tls_config
from infra.cell_frontend import CellFrontend, run_cell_frontend

pytestmark = pytest.mark.slow  # every test meters a real local cell

NOW = dt.datetime(2026, 11, 24, 14, 25, 7, tzinfo=dt.UTC)
HOUR = dt.datetime(2026, 11, 24, 14, tzinfo=dt.UTC)
TASK_QUEUE = "orders"

# What Temporal's counter records for one OrderWorkflow plus one query (observed on a real
# cell): the child workflow is counted twice by the server itself.
STARTED = {
    "grpc_StartWorkflowExecution": 1,
    "command_ScheduleActivityTask": 1,
    "activity_retry": 1,
    "command_StartTimer": 1,
}
FINISHED = {
    "grpc_SignalWorkflowExecution": 1,
    "grpc_QueryWorkflow": 1,
    "command_StartChildWorkflowExecution": 1,
    "command_StartChildWorkflowExecution_Extra": 1,
}
PER_ORDER_KINDS = {
    ActionKind.WORKFLOW: 1,
    ActionKind.ACTIVITY: 2,
    ActionKind.TIMER: 1,
    ActionKind.SIGNAL: 1,
    ActionKind.QUERY: 1,
    ActionKind.CHILD_WORKFLOW: 2,
}


def _times(counts: Mapping[str, int], factor: int) -> dict[str, int]:
    return {key: value * factor for key, value in counts.items()}


def _add(*counts: Mapping[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for each in counts:
        for key, value in each.items():
            total[key] = total.get(key, 0) + value
    return total


@dataclass
class RunningCell:
    provider: LocalCellProvider
    spec: CellEndpoint

    @property
    def address(self) -> str:
        return self.provider.address(self.spec.cell_id)

    @property
    def endpoint(self) -> tuple[str, str]:
        return (self.spec.cell_id, self.provider.metrics_url(self.spec.cell_id))


async def _start_cell(provider: LocalCellProvider, cell_id: str) -> RunningCell:
    spec = await provider.provision(cell_id)
    await provider.start(spec)
    return RunningCell(provider, spec)


async def _register(cell: RunningCell, namespace: str) -> None:
    await register_namespace(cell.address, namespace, TASK_QUEUE)


@pytest.fixture(scope="module")
async def provider(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCellProvider]:
    provider = LocalCellProvider(tmp_path_factory.mktemp("cells"), free_ports=free_ports)
    try:
        yield provider
    finally:
        await asyncio.gather(*(provider.stop(cell) for cell in provider.known_cells()))


@pytest.fixture(scope="module")
async def cell(provider: LocalCellProvider) -> RunningCell:
    """One cell shared by the tests that do not restart it; each test uses its own namespace."""
    return await _start_cell(provider, "cell-shared")


@pytest.fixture
async def namespace(cell: RunningCell) -> str:
    namespace = f"n{uuid.uuid4().hex[:8]}.acme1"
    await _register(cell, namespace)
    return namespace


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
def meter(http: httpx.AsyncClient) -> Meter:
    return Meter(http, clock=lambda: NOW)


async def _start_orders(client: Client, count: int) -> list[WorkflowHandle[OrderWorkflow, str]]:
    return [
        await client.start_workflow(
            OrderWorkflow.run, f"order-{i}", id=f"order-{uuid.uuid4().hex}", task_queue=TASK_QUEUE
        )
        for i in range(count)
    ]


async def _finish_orders(handles: list[WorkflowHandle[OrderWorkflow, str]]) -> None:
    for handle in handles:
        await handle.signal(OrderWorkflow.approve)
        assert await handle.query(OrderWorkflow.approved)
        await handle.result()


def _worker(client: Client) -> Worker:
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[OrderWorkflow, ReceiptWorkflow],
        activities=[charge],
    )


async def _run_orders(cell: RunningCell, namespace: str, count: int) -> None:
    client = await Client.connect(cell.address, namespace=namespace)
    async with _worker(client):
        await _finish_orders(await _start_orders(client, count))


async def _counted(
    http: httpx.AsyncClient, cell: RunningCell, namespace: str, expected: Mapping[str, int]
) -> None:
    """Wait until the cell exports ``expected`` for the namespace: the server publishes counter
    increments to its metrics endpoint on a reporting interval, not at once."""
    deadline = time.monotonic() + 30
    while True:
        text = (await http.get(cell.endpoint[1])).text
        seen = {
            action_type: value
            for (namespace_id, action_type), value in read_cell_counters(text).actions.items()
            if namespace_id == namespace and value
        }
        if seen == expected:
            return
        assert time.monotonic() < deadline, f"cell exports {seen}, expected {expected}"
        await asyncio.sleep(0.2)


async def _usage(sessions: async_sessionmaker[AsyncSession], namespace: str) -> dict[str, int]:
    async with sessions() as session:
        records = (
            await session.scalars(select(UsageRecord).where(UsageRecord.namespace_id == namespace))
        ).all()
    assert all(record.hour_start == HOUR for record in records)
    assert all(record.account_id == "acme1" for record in records)
    return {record.kind: record.quantity for record in records}


async def _scrape(
    meter: Meter, sessions: async_sessionmaker[AsyncSession], cells: list[tuple[str, str]]
) -> dict[tuple[str, str], int]:
    report = await meter.scrape_once(usage_unit_of_work(sessions), cells)
    assert report.failed == {}
    return report.added


async def test_known_workload_bills_exactly_the_actions_temporal_counted(
    cell: RunningCell,
    namespace: str,
    http: httpx.AsyncClient,
    meter: Meter,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Three orders, each with a retried activity, a timer, a signal, a query and a child
    workflow, bill 3 workflows, 6 activities, 3 timers, 3 signals, 3 queries and 6 child
    workflow actions, in one row per kind for the current hour; a second scrape adds nothing."""
    await _run_orders(cell, namespace, 3)
    await _counted(http, cell, namespace, _times(_add(STARTED, FINISHED), 3))

    added = await _scrape(meter, sessions, [cell.endpoint])

    expected = {str(kind): count for kind, count in _times(PER_ORDER_KINDS, 3).items()}
    assert {kind: n for (ns, kind), n in added.items() if ns == namespace} == expected
    assert await _usage(sessions, namespace) == expected
    assert sum(expected.values()) == 3 * 8

    again = await _scrape(meter, sessions, [cell.endpoint])

    assert [key for key in again if key[0] == namespace] == []
    assert await _usage(sessions, namespace) == expected


async def test_restarted_meter_resumes_from_its_persisted_cursors(
    cell: RunningCell,
    namespace: str,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A new Meter (a restarted scraper process) bills only work done after the last committed
    scrape; work spanning several missed scrapes is billed once, in full, by the next one."""
    await _run_orders(cell, namespace, 1)
    await _counted(http, cell, namespace, _add(STARTED, FINISHED))
    await _scrape(Meter(http, clock=lambda: NOW), sessions, [cell.endpoint])

    await _run_orders(cell, namespace, 2)
    await _counted(http, cell, namespace, _times(_add(STARTED, FINISHED), 3))
    restarted = Meter(http, clock=lambda: NOW)
    added = await _scrape(restarted, sessions, [cell.endpoint])

    expected_added = {str(kind): n for kind, n in _times(PER_ORDER_KINDS, 2).items()}
    assert {kind: n for (ns, kind), n in added.items() if ns == namespace} == expected_added
    expected = {str(kind): n for kind, n in _times(PER_ORDER_KINDS, 3).items()}
    assert await _usage(sessions, namespace) == expected


class _CrashAtCommit(Session):
    """A session whose ``crash_at``-th commit in this process raises before committing: the
    meter's process dying right there, with the batches before it committed."""

    commits = 0
    crash_at = 0


@event.listens_for(_CrashAtCommit, "before_commit")
def _crash(session: Session) -> None:
    _CrashAtCommit.commits += 1
    if _CrashAtCommit.commits == _CrashAtCommit.crash_at:
        raise RuntimeError("meter process killed")


async def test_crash_between_batches_neither_loses_nor_double_counts(
    provider: LocalCellProvider,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A scrape billing one namespace per transaction dies after its first batch committed:
    that namespace is billed in full, the others not at all; the next scrape bills the others
    exactly once and adds nothing to the first."""
    # A cell of the test's own (per database it runs on): batches go in name order, and the
    # three namespaces must be all the cell has.
    cell = await _start_cell(provider, f"cell-crash-{uuid.uuid4().hex[:6]}")
    namespaces = [f"a{i}{uuid.uuid4().hex[:6]}.acme1" for i in range(3)]
    for namespace in namespaces:
        await _register(cell, namespace)
        await _run_orders(cell, namespace, 1)
        await _counted(http, cell, namespace, _add(STARTED, FINISHED))
    expected = {str(kind): n for kind, n in PER_ORDER_KINDS.items()}
    meter = Meter(http, clock=lambda: NOW, batch_namespaces=1)
    crashing = async_sessionmaker(
        sessions.kw["bind"], expire_on_commit=False, sync_session_class=_CrashAtCommit
    )
    _CrashAtCommit.commits = 0
    # Commit 1 records the cell's counter total, commit 2 the first batch, 3 the second one.
    _CrashAtCommit.crash_at = 3

    report = await meter.scrape_once(usage_unit_of_work(crashing), [cell.endpoint])

    assert report.failed == {cell.spec.cell_id: "RuntimeError: meter process killed"}
    assert {ns for ns, _ in report.added} == {namespaces[0]}
    assert await _usage(sessions, namespaces[0]) == expected
    assert await _usage(sessions, namespaces[1]) == {}
    assert await _usage(sessions, namespaces[2]) == {}

    added = await _scrape(meter, sessions, [cell.endpoint])

    assert [key for key in added if key[0] == namespaces[0]] == []
    for namespace in namespaces:
        assert await _usage(sessions, namespace) == expected
    assert [key for key in await _scrape(meter, sessions, [cell.endpoint])] == []


class _Recorded(Session):
    """A session recording, per committed transaction, the namespaces whose usage or cursors
    it wrote, and how many of its transactions are open."""

    open_transactions = 0
    written: list[set[str]] = []  # noqa: RUF012


@event.listens_for(_Recorded, "after_begin")
def _began(session: Session, *_: object) -> None:
    _Recorded.open_transactions += 1
    session.info["namespaces"] = set()


@event.listens_for(_Recorded, "before_flush")
def _flushing(session: Session, *_: object) -> None:
    for row in (*session.new, *session.dirty):
        if isinstance(row, UsageCursor | UsageRecord):
            session.info["namespaces"].add(row.namespace_id)


@event.listens_for(_Recorded, "after_commit")
def _committed(session: Session) -> None:
    _Recorded.open_transactions -= 1
    _Recorded.written.append(session.info.pop("namespaces", set()))


@event.listens_for(_Recorded, "after_rollback")
def _rolled_back(session: Session) -> None:
    if session.info.pop("namespaces", None) is not None:
        _Recorded.open_transactions -= 1


def _exposition(namespaces: list[str]) -> bytes:
    lines = ["# HELP action action", "# TYPE action counter"]
    for namespace in namespaces:
        label = namespace.replace("-", "_").replace(".", "_")
        for action_type, value in _add(STARTED, FINISHED).items():
            lines.append(
                f'action{{action_type="{action_type}",namespace="{label}",'
                f'operation="x",service_name="frontend"}} {value}'
            )
    return ("\n".join(lines) + "\n").encode()


def _write_without_waiting(url: URL) -> str:
    """Another tenant's write on another connection, refused at once if anyone held a lock:
    SQLite's database write lock (timeout 0), or on PostgreSQL any lock on the usage tables
    that a writing transaction takes (LOCK ... NOWAIT conflicts with them all)."""
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        other = sqlite3.connect(url.database, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("DELETE FROM usage_sources WHERE cell_id = 'nobody'")
            other.execute("COMMIT")
            return "written"
        except sqlite3.OperationalError as error:
            return str(error)
        finally:
            other.close()
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as pg:
        try:
            pg.execute(
                "LOCK TABLE usage_sources, usage_cursors, usage_records IN EXCLUSIVE MODE NOWAIT"
            )
            pg.execute("DELETE FROM usage_sources WHERE cell_id = 'nobody'")
            return "written"
        except psycopg.errors.LockNotAvailable as error:
            return str(error)


async def test_no_write_lock_is_held_during_metrics_reads_or_across_batches(
    http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """While the meter waits on a slow metrics endpoint, no transaction of its is open and
    another connection writes without waiting; then 60 namespaces are billed in transactions
    of at most 10 namespaces each, not in one that holds the write lock for the whole cell."""
    namespaces = [f"tenant-{i:02d}.acme1" for i in range(60)]
    url = sessions.kw["bind"].url
    seen_while_reading: list[tuple[int, str]] = []

    async def slow_endpoint(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        outcome = _write_without_waiting(url)
        seen_while_reading.append((_Recorded.open_transactions, outcome))
        await asyncio.sleep(0.5)  # slow: the meter is blocked on this read meanwhile
        body = _exposition(namespaces)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(slow_endpoint, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    recorded = async_sessionmaker(
        sessions.kw["bind"], expire_on_commit=False, sync_session_class=_Recorded
    )
    _Recorded.open_transactions = 0
    _Recorded.written = []
    try:
        async with server:
            report = await Meter(http, clock=lambda: NOW, batch_namespaces=10).scrape_once(
                usage_unit_of_work(recorded), [("cell-slow", f"http://127.0.0.1:{port}/metrics")]
            )
    finally:
        server.close()

    assert report.failed == {}
    assert seen_while_reading == [(0, "written")]
    batches = [written for written in _Recorded.written if written]
    assert len(batches) == 6
    assert all(len(batch) <= 10 for batch in batches)
    assert set().union(*batches) == set(namespaces)
    assert len(report.added) == 60 * len(PER_ORDER_KINDS)


async def test_unreachable_cell_is_reported_and_skipped(
    cell: RunningCell,
    namespace: str,
    http: httpx.AsyncClient,
    meter: Meter,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A cell whose metrics endpoint does not answer is reported as failed and bills nothing;
    the other cells of the same scrape are billed."""
    await _run_orders(cell, namespace, 1)
    await _counted(http, cell, namespace, _add(STARTED, FINISHED))
    ghost = ("cell-ghost", f"http://127.0.0.1:{free_port()}/metrics")

    report = await meter.scrape_once(usage_unit_of_work(sessions), [ghost, cell.endpoint])

    assert list(report.failed) == ["cell-ghost"]
    assert report.failed["cell-ghost"].startswith("ConnectError")
    expected = {str(kind): n for kind, n in PER_ORDER_KINDS.items()}
    assert await _usage(sessions, namespace) == expected


async def test_cell_restart_mid_workload_keeps_totals_exact(
    provider: LocalCellProvider,
    http: httpx.AsyncClient,
    meter: Meter,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Orders started before a cell restart and finished after it, plus orders run after it,
    bill exactly once in total: the restart (counters back to zero) is detected and the new
    process's counters are billed from zero."""
    # A cell of the test's own per database it runs on (the test runs on SQLite and PostgreSQL).
    cell = await _start_cell(provider, f"cell-restarted-{uuid.uuid4().hex[:6]}")
    namespace = "restart.acme1"
    await _register(cell, namespace)

    client = await Client.connect(cell.address, namespace=namespace)
    async with _worker(client):
        waiting = await _start_orders(client, 2)
        await _counted(http, cell, namespace, _times(STARTED, 2))
    await _scrape(meter, sessions, [cell.endpoint])

    await provider.stop(cell.spec.cell_id)
    await provider.start(cell.spec)
    report = await meter.scrape_once(usage_unit_of_work(sessions), [cell.endpoint])
    assert report.restarted == [cell.spec.cell_id]

    client = await Client.connect(cell.address, namespace=namespace)
    async with _worker(client):
        handles = [client.get_workflow_handle_for(OrderWorkflow.run, h.id) for h in waiting]
        await _finish_orders(handles)
        await _finish_orders(await _start_orders(client, 1))
    # The new process counts only what happened after it started.
    await _counted(http, cell, namespace, _add(_times(FINISHED, 3), STARTED))
    await _scrape(meter, sessions, [cell.endpoint])

    expected = {str(kind): n for kind, n in _times(PER_ORDER_KINDS, 3).items()}
    assert await _usage(sessions, namespace) == expected


@pytest.fixture(scope="module")
def cell_frontend(cell: RunningCell) -> Iterator[CellFrontend]:
    """The shared cell as a registered cell is reached: gRPC and metrics behind an mTLS
    terminator that demands the cell's client certificate."""
    metrics = cell.endpoint[1].removeprefix("http://").removesuffix("/metrics")
    with run_cell_frontend(cell.address, metrics_upstream=metrics) as frontend:
        yield frontend


async def test_tls_cell_is_scraped_over_https_with_its_client_certificate(
    cell: RunningCell,
    cell_frontend: CellFrontend,
    namespace: str,
    http: httpx.AsyncClient,
    meter: Meter,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """Workers reach the cell through its TLS frontend; the meter scrapes its metrics over https
    (the cell's CA and server name verified, its client certificate presented) and bills the
    two orders exactly."""
    client = await Client.connect(
        cell_frontend.address, namespace=namespace, tls=temporal_tls_config(cell_frontend.tls())
    )
    async with _worker(client):
        await _finish_orders(await _start_orders(client, 2))
    await _counted(http, cell, namespace, _times(_add(STARTED, FINISHED), 2))
    tls_cell = MeteredCell(cell.spec.cell_id, cell_frontend.metrics_url, cell_frontend.tls())

    added = await _scrape(meter, sessions, [tls_cell])

    expected = {str(kind): count for kind, count in _times(PER_ORDER_KINDS, 2).items()}
    assert {kind: n for (ns, kind), n in added.items() if ns == namespace} == expected
    assert await _usage(sessions, namespace) == expected


async def test_tls_cell_with_a_wrong_ca_or_plain_http_is_not_scraped(
    cell: RunningCell,
    cell_frontend: CellFrontend,
    meter: Meter,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """A cell whose certificate does not verify, or whose metrics URL is not https although it
    has TLS, fails the scrape with the reason and bills nothing."""
    wrong_ca = cell_frontend.tls(ca=generate_ca("not the cell's CA"))
    plain_url = cell.endpoint[1]
    report = await meter.scrape_once(
        usage_unit_of_work(sessions),
        [
            MeteredCell("cell-wrong-ca", cell_frontend.metrics_url, wrong_ca),
            MeteredCell("cell-plain", plain_url, cell_frontend.tls()),
        ],
    )
    assert report.added == {}
    assert report.failed["cell-wrong-ca"].startswith(
        "ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED]"
    )
    assert report.failed["cell-plain"] == (
        f"ValueError: cell cell-plain has TLS but its metrics URL {plain_url} is not https; "
        "register the cell with an https metrics URL"
    )
