"""The gateway proxies WorkflowService to the right cell and refuses everything else exactly."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import grpc
import grpc.aio
import pytest
from gateway_workflows import GreetingWorkflow, greet
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from dataplane.gateway import Gateway
from dataplane.gateway._proxy import Context, _forwarded_metadata, _Refusal

if TYPE_CHECKING:
    from conftest import Cells, Pki, RawChannel

WORKFLOW_SERVICE = "/temporal.api.workflowservice.v1.WorkflowService"


async def test_workflow_with_activity_runs_through_gateway(client_a: Client) -> None:
    """An SDK worker and client on mTLS through the gateway run a workflow end to end."""
    task_queue = f"greetings-{uuid.uuid4()}"
    async with Worker(
        client_a, task_queue=task_queue, workflows=[GreetingWorkflow], activities=[greet]
    ):
        result = await client_a.execute_workflow(
            GreetingWorkflow.run,
            "Stratus",
            id=f"greet-{uuid.uuid4()}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=60),
        )
    assert result == "Hello, Stratus!"


async def test_cell_errors_reach_the_sdk_with_their_typed_details(
    client_a: Client, cells: Cells
) -> None:
    """The cell's status, message and grpc-status-details-bin trailer are relayed."""
    with pytest.raises(RPCError) as refused:
        await client_a.workflow_service.get_workflow_execution_history(
            wsv1.GetWorkflowExecutionHistoryRequest(
                namespace=cells.namespace_a,
                execution=common.WorkflowExecution(workflow_id="no-such-workflow"),
            )
        )
    assert refused.value.status == RPCStatusCode.NOT_FOUND
    assert "no-such-workflow" in refused.value.message
    assert refused.value.grpc_status.details[0].type_url.endswith(
        "temporal.api.errordetails.v1.NotFoundFailure"
    )


async def test_other_accounts_certificate_is_refused_on_every_kind_of_call(
    gateway: Gateway, pki: Pki, cells: Cells
) -> None:
    """Account A's certificate is denied on B's namespace: naming B in the TLS server name
    fails the handshake (B's CAs do not verify it), and a connection opened for A refuses
    start, poll and describe for B."""
    address = f"127.0.0.1:{gateway.bound_port}"
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await Client.connect(
            address, namespace=cells.namespace_b, tls=pki.tls(pki.client_a, cells.namespace_b)
        )
    # A real attacker points their client at the victim's namespace over its own connection.
    client = await Client.connect(
        address, namespace=cells.namespace_b, tls=pki.tls(pki.client_a, cells.namespace_a)
    )
    namespace = cells.namespace_b
    queue = taskqueue.TaskQueue(name="victim-queue")
    calls = [
        client.workflow_service.start_workflow_execution(
            wsv1.StartWorkflowExecutionRequest(
                namespace=namespace,
                workflow_id="stolen",
                workflow_type=common.WorkflowType(name="GreetingWorkflow"),
                task_queue=queue,
                request_id=str(uuid.uuid4()),
            )
        ),
        client.workflow_service.poll_workflow_task_queue(
            wsv1.PollWorkflowTaskQueueRequest(namespace=namespace, task_queue=queue)
        ),
        client.workflow_service.describe_namespace(
            wsv1.DescribeNamespaceRequest(namespace=namespace)
        ),
    ]
    for call in calls:
        with pytest.raises(RPCError) as refused:
            await call
        assert refused.value.status == RPCStatusCode.PERMISSION_DENIED
        assert refused.value.message.split(";")[0] == (
            f"this connection is for namespace {cells.namespace_a} (its TLS server name)"
        )


async def test_namespace_header_must_match_the_body(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A temporal-namespace header naming another namespace than the body is rejected."""
    body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(f"{WORKFLOW_SERVICE}/DescribeNamespace")(
                body, metadata=(("temporal-namespace", cells.namespace_b),), timeout=10
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert f"header names namespace {cells.namespace_b}" in details
    assert f"body names namespace {cells.namespace_a}" in details


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(("{a}", "{b}"), id="two-namespaces"),
        pytest.param(("{b}", "{a}"), id="body-namespace-last"),
        pytest.param(("{a}", "{a}"), id="same-namespace-twice"),
    ],
)
async def test_namespace_header_sent_twice_is_refused(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel, values: tuple[str, str]
) -> None:
    """Two temporal-namespace values on one call are refused, whichever comes last: a checker
    reading the last value and a server reading the first would otherwise disagree."""
    body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
    metadata = tuple(
        ("temporal-namespace", value.format(a=cells.namespace_a, b=cells.namespace_b))
        for value in values
    )
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(f"{WORKFLOW_SERVICE}/DescribeNamespace")(
                body, metadata=metadata, timeout=10
            )
        # Namespace-less calls are held to the same rule.
        with pytest.raises(grpc.aio.AioRpcError) as cluster_call:
            await channel.unary_unary(f"{WORKFLOW_SERVICE}/GetSystemInfo")(
                wsv1.GetSystemInfoRequest().SerializeToString(), metadata=metadata, timeout=10
            )
    for error in (refused.value, cluster_call.value):
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (error.details() or "").startswith(
            "the temporal-namespace header is sent more than once"
        )


def test_namespace_header_in_other_letter_case_counts_as_a_duplicate() -> None:
    """gRPC clients refuse to send `Temporal-Namespace` (HTTP/2 header names are lower case,
    and the server's transport rejects upper-case ones), so no channel can carry it; the
    gateway's own check still compares names case-insensitively, shown on its metadata reader
    directly."""

    class Invocation:
        def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
            return (("temporal-namespace", "a.x"), ("Temporal-Namespace", "b.x"))

    with pytest.raises(_Refusal) as refused:
        _forwarded_metadata(cast(Context, Invocation()))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.message.startswith("the temporal-namespace header is sent more than once")


@pytest.mark.parametrize(
    ("method", "body", "code", "message"),
    [
        pytest.param(
            "/temporal.api.operatorservice.v1.OperatorService/AddOrUpdateRemoteCluster",
            b"",
            grpc.StatusCode.PERMISSION_DENIED,
            "reserved to the Stratus operator",
            id="operator-service-cluster-admin",
        ),
        pytest.param(
            "/temporal.api.operatorservice.v1.OperatorService/DeleteNamespace",
            b"",
            grpc.StatusCode.PERMISSION_DENIED,
            "namespaces are managed through the Stratus control plane",
            id="operator-service-delete-namespace",
        ),
        pytest.param(
            "/temporal.api.adminservice.v1.AdminService/DescribeCluster",
            b"",
            grpc.StatusCode.UNIMPLEMENTED,
            "is not served by Stratus",
            id="admin-service",
        ),
        pytest.param(
            f"{WORKFLOW_SERVICE}/DescribeNamespace",
            b"\xff\xff\xff",
            grpc.StatusCode.INVALID_ARGUMENT,
            "request body is not a valid DescribeNamespaceRequest",
            id="undecodable-body",
        ),
        pytest.param(
            f"{WORKFLOW_SERVICE}/RegisterNamespace",
            wsv1.RegisterNamespaceRequest(namespace="mine.acct1").SerializeToString(),
            grpc.StatusCode.PERMISSION_DENIED,
            "namespaces are managed through the Stratus control plane",
            id="register-namespace",
        ),
        pytest.param(
            f"{WORKFLOW_SERVICE}/DescribeNamespace",
            b"",
            grpc.StatusCode.INVALID_ARGUMENT,
            "request has no namespace",
            id="empty-namespace",
        ),
        pytest.param(
            f"{WORKFLOW_SERVICE}/DescribeNamespace",
            wsv1.DescribeNamespaceRequest(namespace="ghost.acct9").SerializeToString(),
            grpc.StatusCode.PERMISSION_DENIED,
            "this connection is for namespace orders.acct1 (its TLS server name); a request "
            "for namespace ghost.acct9 needs a connection",
            id="unknown-namespace",
        ),
    ],
)
async def test_refusals(
    gateway: Gateway,
    pki: Pki,
    raw_channel: RawChannel,
    method: str,
    body: bytes,
    code: grpc.StatusCode,
    message: str,
) -> None:
    """Each refusal carries its exact status code and says what to fix."""
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(method)(body, timeout=10)
    assert refused.value.code() == code
    assert message in (refused.value.details() or "")


async def test_sdk_sees_permission_denied(client_a: Client) -> None:
    """The same refusals as the SDK reports them (RPCError status and message): another
    namespace, whether it exists or not, is refused alike (no existence probe)."""
    with pytest.raises(RPCError) as missing:
        await client_a.workflow_service.describe_namespace(
            wsv1.DescribeNamespaceRequest(namespace="ghost.acct9")
        )
    assert missing.value.status == RPCStatusCode.PERMISSION_DENIED
    assert missing.value.message.startswith(
        "this connection is for namespace orders.acct1 (its TLS server name)"
    )
    with pytest.raises(RPCError) as denied:
        await client_a.workflow_service.register_namespace(
            wsv1.RegisterNamespaceRequest(namespace="sneaky.acct1")
        )
    assert denied.value.status == RPCStatusCode.PERMISSION_DENIED


async def test_cluster_info_is_served_to_admitted_clients(client_a: Client) -> None:
    """GetSystemInfo reaches a cell the certificate is admitted to; GetClusterInfo keeps the
    server version but none of the cluster's internals."""
    info = await client_a.workflow_service.get_system_info(wsv1.GetSystemInfoRequest())
    assert info.server_version
    cluster = await client_a.workflow_service.get_cluster_info(wsv1.GetClusterInfoRequest())
    assert cluster.server_version
    assert cluster.supported_clients
    assert not cluster.cluster_name
    assert not cluster.cluster_id
    assert not cluster.history_shard_count
    assert not cluster.persistence_store


async def test_every_method_is_handled(gateway: Gateway, pki: Pki, raw_channel: RawChannel) -> None:
    """The catalogue is complete: no WorkflowService or OperatorService method falls through to
    UNIMPLEMENTED (an undecodable body is refused as such for each)."""
    from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
    from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service

    services = [
        operator_service.DESCRIPTOR.services_by_name["OperatorService"],
        workflow_service.DESCRIPTOR.services_by_name["WorkflowService"],
    ]
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        for service in services:
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await channel.unary_unary(path)(b"\xff", timeout=10)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, path


async def test_each_call_emits_a_span(
    client_a: Client, cells: Cells, spans: InMemorySpanExporter
) -> None:
    """Spans name the method and carry the namespace and the gRPC status code."""
    spans.clear()
    await client_a.workflow_service.describe_namespace(
        wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a)
    )
    with pytest.raises(RPCError):
        await client_a.workflow_service.describe_namespace(
            wsv1.DescribeNamespaceRequest(namespace=cells.namespace_b)
        )
    emitted = [
        span
        for span in spans.get_finished_spans()
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == "stratus.gateway"
        and span.name == "DescribeNamespace"
    ]
    assert [
        (
            span.attributes["rpc.method"],
            span.attributes["temporal.namespace"],
            span.attributes["rpc.grpc.status_code"],
        )
        for span in emitted
        if span.attributes is not None
    ] == [
        ("DescribeNamespace", cells.namespace_a, grpc.StatusCode.OK.value[0]),
        ("DescribeNamespace", cells.namespace_b, grpc.StatusCode.PERMISSION_DENIED.value[0]),
    ]


async def test_grpc_health_check_is_answered_by_the_gateway(
    gateway: Gateway, pki: Pki, raw_channel: RawChannel
) -> None:
    """grpc.health.v1.Health/Check answers SERVING (status 1) to an admitted TLS peer."""
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        raw = await channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=10)
    assert raw == b"\x08\x01"
