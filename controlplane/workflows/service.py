"""Reading a namespace's workflows for the console, through the gateway's checks and route.

A read is allowed exactly when the gateway would admit the caller's credential for a ``read``
Temporal call on the namespace (``auth.authorize`` with ``namespace.data.read``, the action
behind :func:`auth.data_plane_permission`). It goes where the gateway sends the namespace's
traffic (its published route → its cell → a channel with the cell's TLS, as
``dataplane.cells.grpc_channel`` builds for the gateway), named as the cell knows it, and uses
only three read RPCs, each classified ``read`` in the gateway's method policy. Temporal's page
tokens leave sealed and bound to the namespace (and the query or the run), so a token cannot be
forged or carried into another namespace.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import event_type_pb2, workflow_pb2
from temporalio.api.enums.v1.workflow_pb2 import HistoryEventFilterType
from temporalio.api.workflowservice.v1 import request_response_pb2 as rpc

from auth import Action, Principal, Resource, SecretBox, SecretUnreadable, authorize
from controlplane.cells.repository import CellRepository
from controlplane.gateway_routes.repository import GatewayRouteRepository
from controlplane.kit.authorization import require
from controlplane.kit.errors import Conflict, InvalidField, NotFound, StratusError
from controlplane.models import Namespace, NamespaceState
from controlplane.namespaces.repository import NamespaceRepository
from controlplane.states import CellProbeState
from dataplane.cells import CellTls, grpc_channel

if TYPE_CHECKING:
    from google.protobuf.message import Message

_SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
# The only RPCs this module sends (tests check each is a `read` method for the gateway).
READ_RPCS = ("ListWorkflowExecutions", "DescribeWorkflowExecution", "GetWorkflowExecutionHistory")
# States whose namespace is routed and served by the gateway (UPDATING: a CA change in flight).
SERVED_STATES = frozenset({NamespaceState.ACTIVE, NamespaceState.UPDATING})
# What a visibility query status filter may name (Temporal's ExecutionStatus values).
STATUSES = (
    "Running",
    "Completed",
    "Failed",
    "Canceled",
    "Terminated",
    "ContinuedAsNew",
    "TimedOut",
)
MAX_QUERY_CHARS = 2000
MAX_PAGE_SIZE = 100
_CALL_TIMEOUT_SECONDS = 10.0
# A history page may be large (payloads): as the gateway, never the tighter limit.
_CHANNEL_OPTIONS = (("grpc.max_receive_message_length", 128 * 1024 * 1024),)
# A payload shown on a page is cut here (the page stays small; the history has it whole).
_MAX_SHOWN_CHARS = 64 * 1024
_SUMMARY_CHARS = 120
# Larger JSON payloads are not parsed for a page (their size is shown).
_MAX_PARSED_BYTES = 1024 * 1024
# The largest payload the workflow page hands to the browser for the codec server.
_MAX_CODEC_BYTES = 256 * 1024
_JSON_ENCODINGS = frozenset({b"json/plain", b"json/protobuf"})
_NULL_ENCODING = b"binary/null"


class WorkflowsUnavailable(StratusError):
    """The namespace's cell cannot be reached now (down, unhealthy, not routed): retry later."""

    status = 503
    slug = "workflows-unavailable"
    title = "Workflows are temporarily unavailable"


class NamespaceNotServed(Conflict):
    """The namespace is not (or no longer) served: it has no workflows to browse now."""

    slug = "namespace-not-active"
    title = "Namespace not active"


class CellChannels:
    """One ``grpc.aio`` channel per cell (built on first use with the cell's TLS, as the gateway's
    upstream channels are), replaced when the cell's address or TLS changes, closed with the
    API process."""

    def __init__(self, box: SecretBox) -> None:
        self.box = box
        self._channels: dict[str, tuple[tuple[str, CellTls | None], grpc.aio.Channel]] = {}

    async def channel(self, cell_id: str, address: str, tls: CellTls | None) -> grpc.aio.Channel:
        held = self._channels.get(cell_id)
        if held is not None and held[0] == (address, tls):
            return held[1]
        if held is not None:
            await held[1].close(grace=None)
        channel = grpc_channel(address, tls, list(_CHANNEL_OPTIONS))
        self._channels[cell_id] = ((address, tls), channel)
        return channel

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        for _, channel in channels.values():
            await channel.close(grace=None)


@dataclass(frozen=True)
class Shown:
    """A payload as a page shows it: pretty JSON text, or only its size (never decoded
    further, never executed)."""

    json: str | None
    size: int
    encoding: str
    # A payload not shown as JSON, in Temporal's JSON form ({"metadata": {key: base64},
    # "data": base64}) for the browser to send to the namespace's codec server ("" if too
    # large).
    encoded: str = ""

    @property
    def summary(self) -> str:
        if self.json is None:
            if self.encoding.encode() in _JSON_ENCODINGS:
                return f"JSON, {self.size} bytes (too large to show here)"
            return f"binary, {self.size} bytes"
        flat = " ".join(self.json.split())
        return flat if len(flat) <= _SUMMARY_CHARS else flat[: _SUMMARY_CHARS - 1] + "…"


@dataclass(frozen=True)
class WorkflowRow:
    workflow_id: str
    run_id: str
    type: str
    status: str
    task_queue: str
    start_time: dt.datetime | None
    close_time: dt.datetime | None


@dataclass(frozen=True)
class WorkflowPage:
    rows: list[WorkflowRow]
    # The sealed token of the next page (None: this is the last).
    next_page: str | None


@dataclass(frozen=True)
class PendingActivity:
    activity_id: str
    type: str
    state: str
    attempt: int
    last_failure: str


@dataclass(frozen=True)
class HistoryEventRow:
    event_id: int
    type: str
    time: dt.datetime | None
    attributes: list[tuple[str, str]]


@dataclass(frozen=True)
class HistoryPage:
    events: list[HistoryEventRow]
    next_page: str | None


@dataclass(frozen=True)
class WorkflowDetail:
    namespace: Namespace
    row: WorkflowRow
    history_length: int
    input: list[Shown]
    result: list[Shown]
    failure: str
    pending_activities: list[PendingActivity]
    history: HistoryPage


@dataclass(frozen=True)
class NamespaceCell:
    namespace: Namespace
    # The namespace's name on its cell.
    cell_namespace: str
    channel: grpc.aio.Channel


async def namespace_for_reading(
    session: AsyncSession, principal: Principal, namespace_id: str
) -> Namespace:
    """The namespace, if ``principal`` may read its workflows: one it may not even see is not
    found (as another account's), one it sees but may not read through the gateway is 403."""
    namespace = await NamespaceRepository(session, principal).get(namespace_id)
    resource = None if namespace is None else Resource(namespace.account_id, namespace.id)
    if (
        namespace is None
        or resource is None
        or not (
            authorize(principal, Action.NAMESPACE_READ, resource)
            or authorize(principal, Action.NAMESPACE_DATA_READ, resource)
        )
    ):
        raise NotFound(f"namespace {namespace_id} not found")
    require(
        principal,
        Action.NAMESPACE_DATA_READ,
        resource,
        refusal=f"this credential may not read the workflows of namespace {namespace_id}",
    )
    return namespace


async def _cell(
    session: AsyncSession, principal: Principal, channels: CellChannels, namespace_id: str
) -> NamespaceCell:
    namespace = await namespace_for_reading(session, principal, namespace_id)
    return await namespace_cell(session, channels, namespace)


async def namespace_cell(
    session: AsyncSession, channels: CellChannels, namespace: Namespace
) -> NamespaceCell:
    """Where the gateway sends ``namespace``'s traffic (its route → its cell → a channel with
    the cell's TLS), for a caller that has already decided it may read the namespace (a
    principal's read above, the control plane's own jobs)."""
    if namespace.state not in SERVED_STATES:
        raise NamespaceNotServed(
            f"namespace {namespace.id} is {namespace.state.value}; its workflows can be browsed "
            "once it is ACTIVE"
        )
    route = await GatewayRouteRepository(session).get(namespace.id)
    if route is None or route.removed:
        raise WorkflowsUnavailable(
            f"namespace {namespace.id} is not served by the gateway yet; retry shortly"
        )
    unavailable = WorkflowsUnavailable(
        f"namespace {namespace.id} is temporarily unavailable; retry shortly"
    )
    tls: CellTls | None = None
    address = route.cell_address
    if route.cell_id:
        cell = await CellRepository(session).get(route.cell_id)
        # As the gateway: a cell the prober found unhealthy takes no traffic.
        if cell is None or cell.health_state is CellProbeState.UNHEALTHY:
            raise unavailable
        address = cell.address
        try:
            tls = cell.tls(channels.box.open)
        except (SecretUnreadable, ValueError):
            raise unavailable from None
    channel = await channels.channel(route.cell_id or address, address, tls)
    return NamespaceCell(namespace, route.namespace_id, channel)


async def call_read(cell: NamespaceCell, method: str, request: Message, response_type: Any) -> Any:
    """One of the ``READ_RPCS`` on the namespace's cell; gRPC errors become domain errors."""
    assert method in READ_RPCS
    call = cell.channel.unary_unary(
        f"/{_SERVICE}/{method}",
        request_serializer=type(request).SerializeToString,
        response_deserializer=response_type.FromString,
    )
    try:
        return await call(request, timeout=_CALL_TIMEOUT_SECONDS)
    except grpc.aio.UsageError:
        # The cell's channel was replaced (its address or TLS changed) as this call started.
        raise WorkflowsUnavailable(
            f"namespace {cell.namespace.id} is temporarily unavailable; retry shortly"
        ) from None
    except grpc.aio.AioRpcError as error:
        code = error.code()
        if code is grpc.StatusCode.NOT_FOUND:
            raise NotFound(f"not found in namespace {cell.namespace.id}") from None
        if code is grpc.StatusCode.INVALID_ARGUMENT:
            raise _InvalidArgument(error.details() or "invalid argument") from None
        raise WorkflowsUnavailable(
            f"namespace {cell.namespace.id} is temporarily unavailable; retry shortly"
        ) from None


class _InvalidArgument(Exception):
    pass


def _binding(kind: str, namespace_id: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(parts).encode()).hexdigest()
    return f"console-{kind}-page:{namespace_id}:{digest}"


def _seal(box: SecretBox, token: bytes, binding: str) -> str | None:
    return box.seal(token.hex(), bound_to=binding) if token else None


def _open(box: SecretBox, page: str, binding: str) -> bytes:
    if not page:
        return b""
    try:
        return bytes.fromhex(box.open(page, bound_to=binding))
    except (SecretUnreadable, ValueError):
        raise InvalidField(
            "this page link is not valid here (it belongs to another namespace, search or "
            "workflow, or was altered); start again from the first page",
            field="page",
        ) from None


def _time(value: Any) -> dt.datetime | None:
    if value.seconds == 0 and value.nanos == 0:
        return None
    result: dt.datetime = value.ToDatetime(tzinfo=dt.UTC)
    return result


def _camel(enum_name: str, prefix: str) -> str:
    return "".join(word.capitalize() for word in enum_name.removeprefix(prefix).split("_"))


def _status(value: Any) -> str:
    return _camel(workflow_pb2.WorkflowExecutionStatus.Name(value), "WORKFLOW_EXECUTION_STATUS_")


def _row(info: Any) -> WorkflowRow:
    return WorkflowRow(
        workflow_id=info.execution.workflow_id,
        run_id=info.execution.run_id,
        type=info.type.name,
        status=_status(info.status),
        task_queue=info.task_queue,
        start_time=_time(info.start_time),
        close_time=_time(info.close_time),
    )


def shown(payload: common.Payload) -> Shown:
    """A payload for display: JSON when its encoding says so and it parses, else its size."""
    encoding = bytes(payload.metadata.get("encoding", b""))
    data = bytes(payload.data)
    label = encoding.decode("utf-8", errors="replace")
    if encoding == _NULL_ENCODING:
        return Shown("null", len(data), label)
    if encoding in _JSON_ENCODINGS and len(data) <= _MAX_PARSED_BYTES:
        try:
            text = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            # Not JSON after all: shown as what it is, bytes.
            return Shown(None, len(data), "")
        if len(text) > _MAX_SHOWN_CHARS:
            text = text[:_MAX_SHOWN_CHARS] + "\n… (cut)"
        return Shown(text, len(data), label)
    return Shown(None, len(data), label, _encoded(payload))


def _encoded(payload: common.Payload) -> str:
    if payload.ByteSize() > _MAX_CODEC_BYTES:
        return ""
    return json.dumps(
        {
            "metadata": {
                key: base64.b64encode(value).decode() for key, value in payload.metadata.items()
            },
            "data": base64.b64encode(payload.data).decode(),
        },
        sort_keys=True,
    )


def _shown_all(payloads: Sequence[common.Payload]) -> list[Shown]:
    return [shown(payload) for payload in payloads]


def _query(query: str, status: str) -> str:
    query = query.strip()
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidField(f"the query is longer than {MAX_QUERY_CHARS} characters", field="query")
    if status and status not in STATUSES:
        raise InvalidField(f"choose a status among {', '.join(STATUSES)}", field="status")
    parts = [f"({query})"] if query else []
    if status:
        parts.append(f'ExecutionStatus="{status}"')
    return " AND ".join(parts)


def _page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidField(f"page size must be 1 to {MAX_PAGE_SIZE}", field="page_size")
    return page_size


async def list_workflows(
    session: AsyncSession,
    principal: Principal,
    channels: CellChannels,
    *,
    namespace_id: str,
    query: str = "",
    status: str = "",
    page: str = "",
    page_size: int = 25,
) -> WorkflowPage:
    """One page of the namespace's workflows matching the visibility ``query`` (Temporal's List
    Filter) and ``status``; ``page`` is the sealed token a previous page returned."""
    full_query = _query(query, status)
    size = _page_size(page_size)
    binding = _binding("list", namespace_id, full_query)
    token = _open(channels.box, page, binding)
    cell = await _cell(session, principal, channels, namespace_id)
    request = rpc.ListWorkflowExecutionsRequest(
        namespace=cell.cell_namespace, page_size=size, next_page_token=token, query=full_query
    )
    try:
        response = await call_read(
            cell, "ListWorkflowExecutions", request, rpc.ListWorkflowExecutionsResponse
        )
    except _InvalidArgument as invalid:
        if token:
            raise InvalidField(
                "this page link has expired; start again from the first page", field="page"
            ) from None
        raise InvalidField(f"the query is not valid: {invalid}", field="query") from None
    return WorkflowPage(
        rows=[_row(info) for info in response.executions],
        next_page=_seal(channels.box, bytes(response.next_page_token), binding),
    )


# Attributes of a history event worth a column: (field, label).
_EVENT_FIELDS = (
    ("workflow_type", "workflow type"),
    ("task_queue", "task queue"),
    ("activity_type", "activity type"),
    ("activity_id", "activity id"),
    ("signal_name", "signal"),
    ("timer_id", "timer"),
    ("start_to_fire_timeout", "fires after"),
    ("attempt", "attempt"),
    ("input", "input"),
    ("result", "result"),
    ("failure", "failure"),
)


def _attribute(value: Any) -> str:
    descriptor = getattr(value, "DESCRIPTOR", None)
    name = descriptor.full_name if descriptor is not None else ""
    if name == "temporal.api.common.v1.Payloads":
        return "; ".join(shown(payload).summary for payload in value.payloads) or "none"
    if name == "temporal.api.failure.v1.Failure":
        return str(value.message)
    if name == "google.protobuf.Duration":
        return f"{value.ToTimedelta().total_seconds():g} s"
    if hasattr(value, "name"):
        return str(value.name)
    return str(value)


def _event(event: Any) -> HistoryEventRow:
    which = event.WhichOneof("attributes")
    attributes: list[tuple[str, str]] = []
    if which:
        body = getattr(event, which)
        fields = body.DESCRIPTOR.fields_by_name
        for field, label in _EVENT_FIELDS:
            if field not in fields:
                continue
            descriptor = fields[field]
            if descriptor.message_type is not None and not body.HasField(field):
                continue
            value = getattr(body, field)
            if descriptor.message_type is None and not value:
                continue
            attributes.append((label, _attribute(value)))
    return HistoryEventRow(
        event_id=event.event_id,
        type=_camel(event_type_pb2.EventType.Name(event.event_type), "EVENT_TYPE_"),
        time=_time(event.event_time),
        attributes=attributes,
    )


def _history_request(
    cell: NamespaceCell,
    workflow_id: str,
    run_id: str,
    *,
    size: int,
    token: bytes = b"",
    close: bool,
) -> Any:
    return rpc.GetWorkflowExecutionHistoryRequest(
        namespace=cell.cell_namespace,
        execution=common.WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        maximum_page_size=size,
        next_page_token=token,
        history_event_filter_type=(
            HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT
            if close
            else HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT
        ),
    )


async def _history(cell: NamespaceCell, request: Any) -> Any:
    try:
        return await call_read(
            cell, "GetWorkflowExecutionHistory", request, rpc.GetWorkflowExecutionHistoryResponse
        )
    except _InvalidArgument:
        raise NotFound(f"no such workflow run in namespace {cell.namespace.id}") from None


async def describe_workflow(
    session: AsyncSession,
    principal: Principal,
    channels: CellChannels,
    *,
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    history_page: str = "",
    history_page_size: int = 50,
) -> WorkflowDetail:
    """A workflow run: what Temporal describes, its input and result (or failure), pending
    activities and one page of its event history (``history_page``: a sealed token)."""
    size = _page_size(history_page_size)
    binding = _binding("history", namespace_id, workflow_id, run_id)
    token = _open(channels.box, history_page, binding)
    cell = await _cell(session, principal, channels, namespace_id)
    describe = rpc.DescribeWorkflowExecutionRequest(
        namespace=cell.cell_namespace,
        execution=common.WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
    )
    try:
        described = await call_read(
            cell, "DescribeWorkflowExecution", describe, rpc.DescribeWorkflowExecutionResponse
        )
    except _InvalidArgument:
        raise NotFound(f"no such workflow run in namespace {namespace_id}") from None
    info = described.workflow_execution_info
    row = _row(info)
    try:
        page = await _history(
            cell,
            _history_request(cell, workflow_id, row.run_id, size=size, token=token, close=False),
        )
    except NotFound:
        if token:
            raise InvalidField(
                "this page link has expired; start again from the first page", field="page"
            ) from None
        raise
    events = list(page.history.events)
    first = events[0] if events and not token else None
    if first is None:
        head = await _history(
            cell, _history_request(cell, workflow_id, row.run_id, size=1, close=False)
        )
        first = head.history.events[0] if head.history.events else None
    inputs: list[Shown] = []
    if first is not None and first.HasField("workflow_execution_started_event_attributes"):
        inputs = _shown_all(first.workflow_execution_started_event_attributes.input.payloads)
    result: list[Shown] = []
    failure = ""
    if row.status != "Running":
        closing = await _history(
            cell, _history_request(cell, workflow_id, row.run_id, size=1, close=True)
        )
        for event in closing.history.events:
            if event.HasField("workflow_execution_completed_event_attributes"):
                completed = event.workflow_execution_completed_event_attributes
                result = _shown_all(completed.result.payloads)
            elif event.HasField("workflow_execution_failed_event_attributes"):
                failure = event.workflow_execution_failed_event_attributes.failure.message
    pending = [
        PendingActivity(
            activity_id=activity.activity_id,
            type=activity.activity_type.name,
            state=_camel(
                type(activity)
                .DESCRIPTOR.fields_by_name["state"]
                .enum_type.values_by_number[activity.state]
                .name,
                "PENDING_ACTIVITY_STATE_",
            ),
            attempt=activity.attempt,
            last_failure=activity.last_failure.message if activity.HasField("last_failure") else "",
        )
        for activity in described.pending_activities
    ]
    return WorkflowDetail(
        namespace=cell.namespace,
        row=row,
        history_length=info.history_length,
        input=inputs,
        result=result,
        failure=failure,
        pending_activities=pending,
        history=HistoryPage(
            events=[_event(event) for event in events],
            next_page=_seal(channels.box, bytes(page.next_page_token), binding),
        ),
    )
