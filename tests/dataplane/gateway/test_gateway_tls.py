"""Per-namespace TLS at the gateway: each handshake trusts only its namespace's CAs, a
namespace is served only with its CAs loaded and verified, and the relay's identities hold."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import grpc
import grpc.aio
import pytest
from gateway_support import route
from lookalike_pki import leaf_under_copied_key_id, lookalike_ca
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client

from auth import KeyPair, parse_ca_bundle

if TYPE_CHECKING:
    from conftest import Cells, GatewayFactory, Pki, RawChannel

DESCRIBE = "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"


async def _describe(raw_channel: RawChannel, port: int, client: KeyPair, namespace: str) -> str:
    body = wsv1.DescribeNamespaceRequest(namespace=namespace).SerializeToString()
    async with raw_channel(port, client, namespace) as channel:
        try:
            await channel.unary_unary(DESCRIBE)(body, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code().name
    return "OK"


@pytest.mark.parametrize("attacker_first", [True, False])
async def test_lookalike_ca_of_another_namespace_changes_nothing(
    make_gateway: GatewayFactory,
    pki: Pki,
    cells: Cells,
    raw_channel: RawChannel,
    attacker_first: bool,
) -> None:
    """B routes a CA with A's CA subject and key identifier, listed before or after A's:
    A's certificate still verifies for A and only A; B's lookalike-issued certificate verifies
    for B and not for A."""
    lookalike = lookalike_ca(pki.ca_a)
    intruder = leaf_under_copied_key_id(lookalike, "acct1 worker")
    victim = route(cells.namespace_a, cells.address_a, pki.ca_a)
    attacker = route(cells.namespace_b, cells.address_b, lookalike)
    gateway, _ = await make_gateway([attacker, victim] if attacker_first else [victim, attacker])
    port = gateway.bound_port

    assert await _describe(raw_channel, port, pki.client_a, cells.namespace_a) == "OK"
    assert await _describe(raw_channel, port, intruder, cells.namespace_b) == "OK"
    # Each handshake fails: the other namespace's CAs are not candidates.
    assert await _describe(raw_channel, port, intruder, cells.namespace_a) == "UNAVAILABLE"
    assert await _describe(raw_channel, port, pki.client_a, cells.namespace_b) == "UNAVAILABLE"


async def test_namespace_whose_cas_cannot_be_put_in_force_is_not_served_and_is_reported(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A bundle whose loaded CA list differs from what it should hold (here: its PEM carries
    another CA than its parsed certificates) is not served — its handshakes end — and is
    reported to the route source; other namespaces are unaffected."""
    good = route(cells.namespace_b, cells.address_b, pki.ca_b)
    mismatched_bundle = dataclasses.replace(
        parse_ca_bundle(pki.ca_a.cert_pem.decode()),
        certificates=parse_ca_bundle(pki.ca_rotated.cert_pem.decode()).certificates,
    )
    broken = dataclasses.replace(
        route(cells.namespace_a, cells.address_a, pki.ca_a), accepted_client_ca=mismatched_bundle
    )
    gateway, source = await make_gateway([broken, good])

    assert set(source.rejected) == {cells.namespace_a}
    assert "could not be loaded" in source.rejected[cells.namespace_a]
    assert cells.namespace_a not in gateway.routes.routes
    assert await _describe(raw_channel, gateway.bound_port, pki.client_a, cells.namespace_a) == (
        "UNAVAILABLE"
    )
    assert await _describe(raw_channel, gateway.bound_port, pki.client_b, cells.namespace_b) == (
        "OK"
    )


async def test_connection_that_bypasses_the_tls_relay_is_refused(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells
) -> None:
    """The gateway's loopback gRPC server answers a connection the relay did not open with
    UNAUTHENTICATED: no identity, no call."""
    gateway, _ = await make_gateway([route(cells.namespace_a, cells.address_a, pki.ca_a)])
    terminator = gateway._terminator  # the loopback port is internal by design
    assert terminator is not None
    body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{terminator.backend_port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(DESCRIBE)(body, timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == (
        "connect through the gateway's TLS endpoint with your client certificate"
    )


async def test_relay_identities_are_dropped_with_their_connections(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells
) -> None:
    """Each relayed connection's identity lives exactly as long as the connection."""
    gateway, _ = await make_gateway([route(cells.namespace_a, cells.address_a, pki.ca_a)])
    terminator = gateway._terminator
    assert terminator is not None
    client = await Client.connect(
        f"127.0.0.1:{gateway.bound_port}",
        namespace=cells.namespace_a,
        tls=pki.tls(pki.client_a, cells.namespace_a),
    )
    await client.workflow_service.describe_namespace(
        wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a)
    )
    assert len(terminator.registry) >= 1
    assert terminator.connections >= 1
    await terminator.stop()
    assert len(terminator.registry) == 0
    assert terminator.connections == 0
