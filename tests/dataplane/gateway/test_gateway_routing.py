"""Trust and routing follow the route source at runtime; untrusted peers never get a session."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING

import grpc
import grpc.aio
import pytest
from gateway_support import route
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from auth import KeyPair
from dataplane.gateway import Gateway

if TYPE_CHECKING:
    from conftest import Cells, GatewayFactory, Pki, RawChannel

# The bound on how fast a routing change applies (refresh_interval is 0.5 s).
ROUTING_DEADLINE = 2.0
DESCRIBE = "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"


@contextlib.contextmanager
def socket_reserved() -> Iterator[int]:
    """A 127.0.0.1 port that is bound but never listens, so connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def within_routing_deadline(check: Callable[[], Awaitable[bool]]) -> float:
    """Seconds until ``check`` holds; fails the test after ROUTING_DEADLINE."""
    started = time.monotonic()
    while True:
        if await check():
            return time.monotonic() - started
        if time.monotonic() - started > ROUTING_DEADLINE:
            pytest.fail(f"routing change not applied within {ROUTING_DEADLINE} s")
        await asyncio.sleep(0.05)


async def describe_status(client: Client, namespace: str) -> RPCStatusCode | None:
    """None when DescribeNamespace succeeds, else the refusal's status."""
    try:
        await client.workflow_service.describe_namespace(
            wsv1.DescribeNamespaceRequest(namespace=namespace)
        )
    except RPCError as error:
        return error.status
    return None


async def handshake_code(
    raw_channel: RawChannel, port: int, client: KeyPair | None, namespace: str
) -> grpc.StatusCode:
    """Status of one DescribeNamespace on a fresh connection (a new TLS handshake)."""
    body = wsv1.DescribeNamespaceRequest(namespace=namespace).SerializeToString()
    async with raw_channel(port, client) as channel:
        try:
            await channel.unary_unary(DESCRIBE)(body, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
    return grpc.StatusCode.OK


async def test_untrusted_certificate_fails_the_tls_handshake(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A certificate from a CA the namespace does not accept cannot connect."""
    client = pki.unknown_ca_client
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await Client.connect(
            f"127.0.0.1:{gateway.bound_port}", namespace=cells.namespace_a, tls=pki.tls(client)
        )
    # At the gRPC level: the handshake fails, so no call is ever admitted.
    code = await handshake_code(raw_channel, gateway.bound_port, client, cells.namespace_a)
    assert code == grpc.StatusCode.UNAVAILABLE


async def test_connection_without_certificate_is_refused_on_every_call(
    gateway: Gateway, pki: Pki, cells: Cells
) -> None:
    """A client that sends no certificate completes TLS but every call, namespace-less ones
    included, is refused UNAUTHENTICATED with what to configure."""
    with pytest.raises(RuntimeError) as refused:
        await Client.connect(
            f"127.0.0.1:{gateway.bound_port}", namespace=cells.namespace_a, tls=pki.tls(None)
        )
    assert "Unauthenticated" in str(refused.value)
    assert "no client certificate was presented" in str(refused.value)


@pytest.mark.parametrize("server_name", [None, "orders.nobody.stratus.localhost", "127.0.0.1"])
async def test_server_name_that_names_no_routed_namespace_ends_the_handshake(
    gateway: Gateway, pki: Pki, cells: Cells, server_name: str | None
) -> None:
    """No server name, a name under the domain that is not routed, or one outside the domain:
    the handshake ends with the TLS alert unrecognized_name, whatever certificate is sent."""
    tls = pki.tls(pki.client_a)
    tls.domain = server_name if server_name is not None else "localhost"
    with pytest.raises(RuntimeError, match=r"UnrecognisedName|UnrecognizedName|unrecognized"):
        await Client.connect(
            f"127.0.0.1:{gateway.bound_port}", namespace=cells.namespace_a, tls=tls
        )


async def test_namespace_added_and_removed_without_restart(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells
) -> None:
    """A namespace published later becomes reachable, and unreachable once withdrawn."""
    base = route(cells.namespace_a, cells.address_a, pki.ca_a)
    later = route(cells.namespace_a_later, cells.address_a, pki.ca_a)
    gateway, source = await make_gateway([base])
    address = f"127.0.0.1:{gateway.bound_port}"
    client = await Client.connect(
        address, namespace=cells.namespace_a, tls=pki.tls(pki.client_a, cells.namespace_a)
    )
    # Not routed yet: its server name is not recognised, so no connection can be made.
    with pytest.raises(RuntimeError, match=r"UnrecognisedName|UnrecognizedName|unrecognized"):
        await Client.connect(
            address,
            namespace=cells.namespace_a_later,
            tls=pki.tls(pki.client_a, cells.namespace_a_later),
        )

    source.set([base, later])

    later_client: list[Client] = []

    async def reachable() -> bool:
        try:
            later_client.append(
                await Client.connect(
                    address,
                    namespace=cells.namespace_a_later,
                    tls=pki.tls(pki.client_a, cells.namespace_a_later),
                )
            )
        except RuntimeError:
            return False
        return await describe_status(later_client[-1], cells.namespace_a_later) is None

    await within_routing_deadline(reachable)

    source.set([base])

    async def withdrawn() -> bool:
        status = await describe_status(later_client[-1], cells.namespace_a_later)
        return status == RPCStatusCode.NOT_FOUND

    await within_routing_deadline(withdrawn)
    assert await describe_status(client, cells.namespace_a) is None


async def test_changed_ca_applies_to_open_and_new_connections(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """Rotating a namespace's CA refuses the old certificate and admits the new one."""
    gateway, source = await make_gateway([route(cells.namespace_a, cells.address_a, pki.ca_a)])
    port = gateway.bound_port
    old_client = await Client.connect(
        f"127.0.0.1:{port}", namespace=cells.namespace_a, tls=pki.tls(pki.client_a)
    )
    assert await describe_status(old_client, cells.namespace_a) is None
    # Before the change the new CA's certificates cannot even complete a handshake.
    assert (
        await handshake_code(raw_channel, port, pki.client_rotated, cells.namespace_a)
        == grpc.StatusCode.UNAVAILABLE
    )

    source.set([route(cells.namespace_a, cells.address_a, pki.ca_rotated)])

    # An open connection keeps its TLS session, so the per-request check must refuse it.
    async def old_refused() -> bool:
        status = await describe_status(old_client, cells.namespace_a)
        return status == RPCStatusCode.PERMISSION_DENIED

    await within_routing_deadline(old_refused)

    # New handshakes use the new trust: the rotated certificate works, the old one is rejected.
    async def rotated_admitted() -> bool:
        code = await handshake_code(raw_channel, port, pki.client_rotated, cells.namespace_a)
        return code == grpc.StatusCode.OK

    await within_routing_deadline(rotated_admitted)
    assert (
        await handshake_code(raw_channel, port, pki.client_a, cells.namespace_a)
        == grpc.StatusCode.UNAVAILABLE
    )
    rotated_client = await Client.connect(
        f"127.0.0.1:{port}", namespace=cells.namespace_a, tls=pki.tls(pki.client_rotated)
    )
    assert await describe_status(rotated_client, cells.namespace_a) is None


async def test_without_routes_every_tenant_handshake_fails(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """With no namespace routed the gateway trusts only its own CA."""
    gateway, source = await make_gateway([])
    port = gateway.bound_port
    assert (
        await handshake_code(raw_channel, port, pki.client_a, cells.namespace_a)
        == grpc.StatusCode.UNAVAILABLE
    )

    source.set([route(cells.namespace_a, cells.address_a, pki.ca_a)])

    async def admitted() -> bool:
        code = await handshake_code(raw_channel, port, pki.client_a, cells.namespace_a)
        return code == grpc.StatusCode.OK

    await within_routing_deadline(admitted)


async def test_unreachable_cell_is_unavailable(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A route to a cell that does not answer gives UNAVAILABLE naming the namespace."""
    with socket_reserved() as dead_port:
        gateway, _ = await make_gateway(
            [route(cells.namespace_a, f"127.0.0.1:{dead_port}", pki.ca_a)]
        )
        body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
        async with raw_channel(gateway.bound_port, pki.client_a) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await channel.unary_unary(DESCRIBE)(body, timeout=10)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failed.value.details() == (
        f"namespace {cells.namespace_a} is temporarily unavailable; retry shortly"
    )


async def test_certificate_filters_admit_only_matching_certificates(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """Both certificates chain to the namespace's CA; only the one whose CN matches the
    filter is admitted, the other is refused naming the filters."""
    from auth import generate_leaf, parse_certificate_filters

    filtered = dataclasses.replace(
        route(cells.namespace_a, cells.address_a, pki.ca_a),
        certificate_filters=parse_certificate_filters([{"common_name": "WORKER-*"}]),
    )
    gateway, _ = await make_gateway([filtered])
    matching = generate_leaf(pki.ca_a, "worker-7")
    other = generate_leaf(pki.ca_a, "intern-laptop")
    address = f"127.0.0.1:{gateway.bound_port}"
    admitted = await Client.connect(address, namespace=cells.namespace_a, tls=pki.tls(matching))
    assert await describe_status(admitted, cells.namespace_a) is None
    # The SDK's connect (GetSystemInfo) is refused, naming why: the filters match nothing.
    with pytest.raises(RuntimeError, match=r"matches none of the namespace.s certificate filters"):
        await Client.connect(address, namespace=cells.namespace_a, tls=pki.tls(other))
    body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
    async with raw_channel(gateway.bound_port, other) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await channel.unary_unary(DESCRIBE)(body, timeout=10)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "matches none of the namespace's certificate filters" in (denied.value.details() or "")


async def test_suspended_route_is_refused_with_its_reason_until_lifted(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A route carrying a suspension refuses its admitted callers with PERMISSION_DENIED and
    the route's text; another account's namespace is served as before; the next table without
    the suspension serves the namespace again."""
    suspended = dataclasses.replace(
        route(cells.namespace_a, cells.address_a, pki.ca_a),
        suspended="account a is suspended (unpaid)",
    )
    gateway, source = await make_gateway(
        [suspended, route(cells.namespace_b, cells.address_b, pki.ca_b)]
    )
    body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(DESCRIBE)(body, timeout=10)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == (
        f"namespace {cells.namespace_a} refused: account a is suspended (unpaid)"
    )
    other = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_b).SerializeToString()
    async with raw_channel(gateway.bound_port, pki.client_b, cells.namespace_b) as channel:
        # Another account's namespace is served as before.
        await channel.unary_unary(DESCRIBE)(other, timeout=10)

    source.set(
        [
            dataclasses.replace(suspended, suspended=""),
            route(cells.namespace_b, cells.address_b, pki.ca_b),
        ]
    )

    async def served() -> bool:
        code = await handshake_code(
            raw_channel, gateway.bound_port, pki.client_a, cells.namespace_a
        )
        return code == grpc.StatusCode.OK

    await within_routing_deadline(served)
