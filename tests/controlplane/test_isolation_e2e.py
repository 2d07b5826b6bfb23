"""Two accounts on one Stratus: neither can reach the other's namespace, on the API or the
gateway."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
from product_constants import PROBLEM
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    gateway_channel_options,
    http,
    new_tenant,
    tls_for,
)
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    PollWorkflowTaskQueueRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from auth import generate_ca, generate_leaf


@dataclass
class TwoTenants:
    a: Tenant
    b: Tenant
    namespace_a: str
    namespace_b: str


@pytest.fixture(scope="module")
def tenants(stratus: StratusUp) -> TwoTenants:
    a, b = new_tenant(stratus, "Alpha"), new_tenant(stratus, "Beta")
    return TwoTenants(
        a,
        b,
        create_active_namespace(stratus, a, "shared"),
        create_active_namespace(stratus, b, "shared"),
    )


async def _client_of_a_on_b(stratus: StratusUp, t: TwoTenants) -> Client:
    return await Client.connect(
        stratus.gateway_address,
        namespace=t.namespace_b,
        tls=tls_for(stratus, t.a.client_cert, t.namespace_a),
    )


def _assert_denied(error: RPCError, namespace: str) -> None:
    assert error.status == RPCStatusCode.PERMISSION_DENIED
    assert namespace in error.message


async def test_cert_of_a_refused_on_b_for_start_poll_and_describe(
    stratus: StratusUp, tenants: TwoTenants
) -> None:
    client = await _client_of_a_on_b(stratus, tenants)
    service = client.workflow_service
    ns = tenants.namespace_b
    with pytest.raises(RPCError) as start:
        await service.start_workflow_execution(
            StartWorkflowExecutionRequest(
                namespace=ns,
                workflow_id="intrusion",
                workflow_type=WorkflowType(name="Anything"),
                task_queue=TaskQueue(name="q"),
                request_id="r1",
            )
        )
    _assert_denied(start.value, ns)
    with pytest.raises(RPCError) as poll:
        await service.poll_workflow_task_queue(
            PollWorkflowTaskQueueRequest(namespace=ns, task_queue=TaskQueue(name="q"))
        )
    _assert_denied(poll.value, ns)
    with pytest.raises(RPCError) as describe:
        await service.describe_namespace(DescribeNamespaceRequest(namespace=ns))
    _assert_denied(describe.value, ns)


async def test_own_namespace_still_served(stratus: StratusUp, tenants: TwoTenants) -> None:
    client = await Client.connect(
        stratus.gateway_address,
        namespace=tenants.namespace_a,
        tls=tls_for(stratus, tenants.a.client_cert, tenants.namespace_a),
    )
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=tenants.namespace_a)
    )
    assert described.namespace_info.name == tenants.namespace_a


async def test_unknown_ca_and_missing_certificate_fail_the_handshake(
    stratus: StratusUp, tenants: TwoTenants
) -> None:
    stranger = generate_leaf(generate_ca("Stranger CA"), "stranger")
    for cert in (stranger, None):
        with pytest.raises(RuntimeError, match=r"(?i)connect|transport|handshake|tls|unavailable"):
            await Client.connect(
                stratus.gateway_address,
                namespace=tenants.namespace_a,
                tls=tls_for(stratus, cert, tenants.namespace_a),
            )


async def test_header_body_namespace_mismatch_refused(
    stratus: StratusUp, tenants: TwoTenants
) -> None:
    """A's own certificate, body naming A's namespace, header naming B's: refused before any
    routing, so a proxy trusting the header could not be steered."""
    credentials = grpc.ssl_channel_credentials(
        stratus.gateway_ca, tenants.a.client_cert.key_pem, tenants.a.client_cert.cert_pem
    )
    async with grpc.aio.secure_channel(
        stratus.gateway_address, credentials, options=gateway_channel_options(tenants.namespace_a)
    ) as channel:
        describe = channel.unary_unary(
            "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace",
            request_serializer=DescribeNamespaceRequest.SerializeToString,
            response_deserializer=lambda raw: raw,
        )
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await describe(
                DescribeNamespaceRequest(namespace=tenants.namespace_a),
                metadata=(("temporal-namespace", tenants.namespace_b),),
            )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert tenants.namespace_a in (refused.value.details() or "")
    assert tenants.namespace_b in (refused.value.details() or "")


def test_api_hides_other_accounts_resources(stratus: StratusUp, tenants: TwoTenants) -> None:
    """A's owner asking for B's namespace or operation gets 404, exactly as for a namespace
    that does not exist: B's existence does not leak."""
    with http(stratus, tenants.a.api_key) as a, http(stratus, tenants.b.api_key) as b:
        operation_of_b = b.get("/operations").json()["operations"][0]["id"]
        for method, path in [
            ("GET", f"/namespaces/{tenants.namespace_b}"),
            ("DELETE", f"/namespaces/{tenants.namespace_b}"),
            ("GET", f"/operations/{operation_of_b}"),
            ("GET", "/namespaces/nothing-here.zzzzz"),
        ]:
            response = a.request(method, path)
            assert response.status_code == 404, (method, path)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["type"] == PROBLEM + "not-found"
        listed = [ns["id"] for ns in a.get("/namespaces").json()["namespaces"]]
        assert tenants.namespace_b not in listed
        assert tenants.namespace_a in listed
        assert b.get(f"/namespaces/{tenants.namespace_b}").json()["state"] == "ACTIVE"
