"""Calls without a namespace (GetSystemInfo, GetSearchAttributes, ListNamespaces,
GetClusterInfo) are held to a per-caller limit, and ListNamespaces is answered from the
gateway's cached descriptions instead of asking a cell per listed namespace per call."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import uuid
from typing import TYPE_CHECKING

import grpc
import grpc.aio
import httpx
from gateway_support import route
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1

from dataplane.gateway import CallerLimits

if TYPE_CHECKING:
    from conftest import Cells, GatewayFactory, Pki, RawChannel

    from auth import KeyPair

SERVICE = "/temporal.api.workflowservice.v1.WorkflowService"
SYSTEM_INFO = f"{SERVICE}/GetSystemInfo"
LIST_NAMESPACES = f"{SERVICE}/ListNamespaces"
DESCRIBE = f"{SERVICE}/DescribeNamespace"
LIMIT_MESSAGE = (
    "this client certificate exceeded its limit of 5 requests per second for calls without a "
    "namespace (GetSystemInfo, GetSearchAttributes, ListNamespaces, GetClusterInfo)"
)


async def _cell_calls(metrics_url: str, operation: str, namespace: str | None = None) -> float:
    """Calls of ``operation`` the cell's frontend served (its own metric; Temporal writes the
    namespace label with ``_`` for ``.``), for ``namespace`` when given."""
    async with httpx.AsyncClient(timeout=10) as client:
        text = (await client.get(metrics_url)).text
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("service_latency_count{")
            and f'operation="{operation}"' in line
            and 'service_name="frontend"' in line
            and (namespace is None or f'namespace="{namespace.replace(".", "_")}"' in line)
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _describes_at_cell(metrics_url: str, namespace: str) -> float:
    return await _cell_calls(metrics_url, "DescribeNamespace", namespace)


async def _outcomes(
    raw_channel: RawChannel,
    port: int,
    client: KeyPair,
    path: str,
    body: bytes,
    count: int,
    namespace: str,
) -> list[tuple[str, str]]:
    outcomes = []
    async with raw_channel(port, client, namespace) as channel:
        call = channel.unary_unary(path)
        for _ in range(count):
            try:
                await call(body, timeout=10)
                outcomes.append(("OK", ""))
            except grpc.aio.AioRpcError as error:
                outcomes.append((error.code().name, error.details() or ""))
    return outcomes


async def test_namespaceless_calls_are_limited_per_caller(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A's certificate bursting GetSystemInfo and ListNamespaces beyond 5/s is refused
    RESOURCE_EXHAUSTED naming the limit; B's certificate at the same time, and A's own
    namespace calls, are not affected."""
    gateway, _ = await make_gateway(
        [
            route(cells.namespace_a, cells.address_a, pki.ca_a),
            route(cells.namespace_b, cells.address_b, pki.ca_b),
        ],
        caller_limits=CallerLimits(namespaceless_requests_per_second=5),
    )
    port = gateway.bound_port
    system_info = wsv1.GetSystemInfoRequest().SerializeToString()
    listing = wsv1.ListNamespacesRequest().SerializeToString()
    a_info, a_list, b_info = await asyncio.gather(
        _outcomes(raw_channel, port, pki.client_a, SYSTEM_INFO, system_info, 20, cells.namespace_a),
        _outcomes(raw_channel, port, pki.client_a, LIST_NAMESPACES, listing, 20, cells.namespace_a),
        _outcomes(raw_channel, port, pki.client_b, SYSTEM_INFO, system_info, 5, cells.namespace_b),
    )
    a_outcomes = a_info + a_list
    refused = [details for code, details in a_outcomes if code == "RESOURCE_EXHAUSTED"]
    assert {code for code, _ in a_outcomes} == {"OK", "RESOURCE_EXHAUSTED"}
    # 40 calls against 5 per second (plus what refilled while they ran).
    assert len(refused) >= 20
    assert all(details.startswith(LIMIT_MESSAGE) for details in refused), refused[:3]
    assert {code for code, _ in b_info} == {"OK"}
    describe = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
    own = await _outcomes(raw_channel, port, pki.client_a, DESCRIBE, describe, 3, cells.namespace_a)
    assert own == [("OK", "")] * 3


async def test_list_namespaces_is_answered_from_cached_descriptions(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """The first ListNamespaces describes A's namespace at its cell once; the next 20 make no
    cell call at all (counted by the cell's own metrics) and still list only A's namespace."""
    gateway, _ = await make_gateway(
        [
            route(cells.namespace_a, cells.address_a, pki.ca_a),
            route(cells.namespace_b, cells.address_b, pki.ca_b),
        ]
    )
    listing = wsv1.ListNamespacesRequest().SerializeToString()
    before = await _describes_at_cell(cells.metrics_a, cells.namespace_a)
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        first = await channel.unary_unary(LIST_NAMESPACES)(listing, timeout=10)
        after_first = await _describes_at_cell(cells.metrics_a, cells.namespace_a)
        answers = [
            await channel.unary_unary(LIST_NAMESPACES)(listing, timeout=10) for _ in range(20)
        ]
    after_all = await _describes_at_cell(cells.metrics_a, cells.namespace_a)
    assert after_first - before == 1
    assert after_all == after_first
    for raw in [first, *answers]:
        listed = wsv1.ListNamespacesResponse.FromString(raw).namespaces
        assert [ns.namespace_info.name for ns in listed] == [cells.namespace_a]
        assert re.fullmatch(r"[0-9a-f-]{36}", listed[0].namespace_info.id)
    b_cell_before = await _describes_at_cell(cells.metrics_b, cells.namespace_b)
    async with raw_channel(gateway.bound_port, pki.client_b, cells.namespace_b) as channel:
        raw = await channel.unary_unary(LIST_NAMESPACES)(listing, timeout=10)
    assert [
        ns.namespace_info.name for ns in wsv1.ListNamespacesResponse.FromString(raw).namespaces
    ] == [cells.namespace_b]
    assert await _describes_at_cell(cells.metrics_b, cells.namespace_b) - b_cell_before == 1


async def test_a_rerouted_namespace_is_described_again(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A route naming another cell-side namespace (deleted and created again) drops the cached
    description: the next listing asks the cell once more."""
    original = route(cells.namespace_a, cells.address_a, pki.ca_a)
    gateway, source = await make_gateway([original])
    listing = wsv1.ListNamespacesRequest().SerializeToString()
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        await channel.unary_unary(LIST_NAMESPACES)(listing, timeout=10)
        before = await _describes_at_cell(cells.metrics_a, cells.namespace_a)
        source.set([dataclasses.replace(original, cell_namespace_id=str(uuid.uuid4()))])
        await gateway.refresh()
        await channel.unary_unary(LIST_NAMESPACES)(listing, timeout=10)
        await channel.unary_unary(LIST_NAMESPACES)(listing, timeout=10)
    assert await _describes_at_cell(cells.metrics_a, cells.namespace_a) - before == 1


async def test_get_system_info_is_answered_from_the_kept_answer(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """GetSystemInfo (every SDK connect) reaches the cell once per 10 s, not once per call."""
    gateway, _ = await make_gateway([route(cells.namespace_a, cells.address_a, pki.ca_a)])
    body = wsv1.GetSystemInfoRequest().SerializeToString()
    before = await _cell_calls(cells.metrics_a, "GetSystemInfo")
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        answers = [await channel.unary_unary(SYSTEM_INFO)(body, timeout=10) for _ in range(10)]
    assert await _cell_calls(cells.metrics_a, "GetSystemInfo") - before == 1
    for raw in answers:
        assert wsv1.GetSystemInfoResponse.FromString(raw).server_version
