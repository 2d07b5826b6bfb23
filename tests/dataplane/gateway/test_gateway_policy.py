"""The method policy covers every method, is what the docs show, and is enforced: a foreign
namespace is refused on every namespace-scoped method, built from the descriptors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import grpc.aio
import pytest
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service

from dataplane.gateway import Gateway
from dataplane.gateway._methods import METHODS
from dataplane.gateway._policy import POLICY, Handling, method_table_markdown

if TYPE_CHECKING:
    from conftest import Cells, Pki, RawChannel

ROOT = Path(__file__).resolve().parents[3]
SERVICES = [
    workflow_service.DESCRIPTOR.services_by_name["WorkflowService"],
    operator_service.DESCRIPTOR.services_by_name["OperatorService"],
]
NAMESPACE_METHODS = sorted(
    path for path, method in METHODS.items() if method.handling is Handling.NAMESPACE
)


def test_every_method_is_classified() -> None:
    """Each WorkflowService and OperatorService method has an explicit policy, and the policy
    names no method that does not exist. A newer temporalio adding a method fails here."""
    declared = {f"{service.full_name}/{m.name}" for service in SERVICES for m in service.methods}
    assert declared - POLICY.keys() == set(), "unclassified methods"
    assert POLICY.keys() - declared == set(), "policy entries for methods that do not exist"


def test_docs_show_the_current_method_table() -> None:
    assert method_table_markdown() in (ROOT / "docs" / "security.md").read_text()


@pytest.mark.parametrize("path", NAMESPACE_METHODS)
async def test_foreign_namespace_is_refused_on_every_namespace_method(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel, path: str
) -> None:
    """A's valid certificate on a connection opened for A, a request naming B's namespace:
    PERMISSION_DENIED, whatever the method (the request is the method's own message with only
    the namespace set)."""
    method = METHODS[path]
    request_type = type(method.parse(b""))
    body = request_type(namespace=cells.namespace_b).SerializeToString()
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(path)(body, timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, path
    assert (refused.value.details() or "").startswith(
        f"this connection is for namespace {cells.namespace_a} (its TLS server name); a request "
        f"for namespace {cells.namespace_b} needs a connection"
    )


async def test_list_namespaces_shows_only_the_callers_namespaces(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """Answered by the gateway: A sees its routed namespace, not B's, not the cells' own."""
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        raw = await channel.unary_unary(
            "/temporal.api.workflowservice.v1.WorkflowService/ListNamespaces"
        )(wsv1.ListNamespacesRequest().SerializeToString(), timeout=10)
    listed = [
        ns.namespace_info.name for ns in wsv1.ListNamespacesResponse.FromString(raw).namespaces
    ]
    assert listed == [cells.namespace_a]


async def test_namespace_scoped_operator_call_is_forwarded(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """OperatorService.ListSearchAttributes for the caller's own namespace reaches its cell."""
    from temporalio.api.operatorservice.v1 import request_response_pb2 as opv1

    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        raw = await channel.unary_unary(
            "/temporal.api.operatorservice.v1.OperatorService/ListSearchAttributes"
        )(
            opv1.ListSearchAttributesRequest(namespace=cells.namespace_a).SerializeToString(),
            timeout=10,
        )
    assert "WorkflowId" in opv1.ListSearchAttributesResponse.FromString(raw).system_attributes
