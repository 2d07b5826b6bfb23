"""Fixtures for gateway tests: two real cells (one per account), PKI, a running gateway."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
import grpc.aio
import pytest
from gateway_support import CELL_NAMESPACE_IDS, route
from google.protobuf.duration_pb2 import Duration
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import free_ports
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client, TLSConfig

from auth import KeyPair, generate_ca, generate_leaf
from dataplane.cells import LocalCellProvider
from dataplane.gateway import CallerLimits, Gateway, Route, ServerNames, StaticRouteSource
from infra.cell_frontend import CellFrontend, run_cell_frontend

NAMESPACE_A = "orders.acct1"
NAMESPACE_B = "orders.acct2"
# Registered on cell A but not routed until a test publishes it.
NAMESPACE_A_LATER = "billing.acct1"


def server_name(namespace: str | None) -> str:
    """The TLS server name a worker of ``namespace`` connects with."""
    return "localhost" if namespace is None else ServerNames().for_namespace(namespace)


@dataclass(frozen=True)
class Pki:
    gateway_ca: KeyPair
    gateway_server: KeyPair
    ca_a: KeyPair
    client_a: KeyPair
    ca_b: KeyPair
    client_b: KeyPair
    ca_rotated: KeyPair
    client_rotated: KeyPair
    unknown_ca_client: KeyPair

    def tls(self, client: KeyPair | None, namespace: str | None = NAMESPACE_A) -> TLSConfig:
        """SDK TLS settings naming ``namespace`` in the TLS server name (None: no namespace,
        the gateway's own name)."""
        return TLSConfig(
            server_root_ca_cert=self.gateway_ca.cert_pem,
            client_cert=client.cert_pem if client else None,
            client_private_key=client.key_pem if client else None,
            domain=server_name(namespace),
        )

    def channel_credentials(self, client: KeyPair | None) -> grpc.ChannelCredentials:
        if client is None:
            return grpc.ssl_channel_credentials(self.gateway_ca.cert_pem)
        return grpc.ssl_channel_credentials(
            self.gateway_ca.cert_pem, client.key_pem, client.cert_pem
        )


@dataclass(frozen=True)
class Cells:
    address_a: str
    address_b: str
    # Each cell's Prometheus endpoint (Temporal's own metrics, e.g. ``service_requests``).
    metrics_a: str
    metrics_b: str
    namespace_a: str = NAMESPACE_A
    namespace_b: str = NAMESPACE_B
    namespace_a_later: str = NAMESPACE_A_LATER


class RawChannel(Protocol):
    def __call__(
        self, port: int, client: KeyPair | None, namespace: str | None = NAMESPACE_A
    ) -> contextlib.AbstractAsyncContextManager[grpc.aio.Channel]: ...


@pytest.fixture(scope="session")
def pki() -> Pki:
    gateway_ca = generate_ca("stratus gateway CA")
    ca_a = generate_ca("acct1 CA")
    ca_b = generate_ca("acct2 CA")
    ca_rotated = generate_ca("acct1 rotated CA")
    return Pki(
        gateway_ca=gateway_ca,
        gateway_server=generate_leaf(
            gateway_ca, "localhost", server_sans=["localhost", "127.0.0.1"]
        ),
        ca_a=ca_a,
        client_a=generate_leaf(ca_a, "acct1 worker"),
        ca_b=ca_b,
        client_b=generate_leaf(ca_b, "acct2 worker"),
        ca_rotated=ca_rotated,
        client_rotated=generate_leaf(ca_rotated, "acct1 worker (rotated)"),
        unknown_ca_client=generate_leaf(generate_ca("nobody's CA"), "intruder"),
    )


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Spans the gateway emits, through the global tracer provider."""
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        # Another test module may have won the race to set the global provider.
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


async def _register(address: str, namespaces: Iterable[str]) -> None:
    client = await Client.connect(address)
    for namespace in namespaces:
        await client.workflow_service.register_namespace(
            wsv1.RegisterNamespaceRequest(
                namespace=namespace,
                workflow_execution_retention_period=Duration(seconds=86_400),
            )
        )
        described = await client.workflow_service.describe_namespace(
            wsv1.DescribeNamespaceRequest(namespace=namespace)
        )
        CELL_NAMESPACE_IDS[namespace] = described.namespace_info.id


@pytest.fixture(scope="session")
async def cells(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cells]:
    """Two real cells, one per account, each with its namespace(s) registered."""
    # Ports from this worker's own range (tests/support.py), never the kernel's ephemeral ones:
    # a port picked by binding 0 can be taken by an outgoing connection before the cell binds it.
    provider = LocalCellProvider(
        Path(tmp_path_factory.mktemp("cells")),
        free_ports=free_ports,
    )
    specs = [await provider.provision(cell_id) for cell_id in ("cell-acct1", "cell-acct2")]
    try:
        await asyncio.gather(*(provider.start(spec) for spec in specs))
        address_a, address_b = (provider.address(spec.cell_id) for spec in specs)
        await _register(address_a, [NAMESPACE_A, NAMESPACE_A_LATER])
        await _register(address_b, [NAMESPACE_B])
        metrics_a, metrics_b = (provider.metrics_url(spec.cell_id) for spec in specs)
        yield Cells(address_a, address_b, metrics_a, metrics_b)
    finally:
        # The provider stops each cell by the PID it recorded when starting it.
        await asyncio.gather(*(provider.stop(spec.cell_id) for spec in specs))


@pytest.fixture(scope="session")
def cell_frontend(cells: Cells) -> Iterator[CellFrontend]:
    """Cell A behind an nginx mTLS terminator that demands its own client certificate (as a
    registered cell is reached), its metrics behind https with the same client certificate."""
    metrics_upstream = cells.metrics_a.removeprefix("http://").removesuffix("/metrics")
    with run_cell_frontend(cells.address_a, metrics_upstream=metrics_upstream) as frontend:
        yield frontend


class GatewayFactory(Protocol):
    def __call__(
        self, routes: list[Route], *, caller_limits: CallerLimits | None = None
    ) -> Awaitable[tuple[Gateway, StaticRouteSource]]: ...


@pytest.fixture
async def make_gateway(pki: Pki, spans: InMemorySpanExporter) -> AsyncIterator[GatewayFactory]:
    """Start private gateways (for tests that change routes); all are stopped afterwards."""
    started: list[Gateway] = []

    async def make(
        routes: list[Route], *, caller_limits: CallerLimits | None = None
    ) -> tuple[Gateway, StaticRouteSource]:
        source = StaticRouteSource(routes)
        gateway = Gateway(
            "127.0.0.1",
            0,
            server_cert_pem=pki.gateway_server.cert_pem,
            server_key_pem=pki.gateway_server.key_pem,
            route_source=source,
            issuer=pki.gateway_ca,
            caller_limits=caller_limits,
        )
        await gateway.start()
        started.append(gateway)
        return gateway, source

    yield make
    for gateway in started:
        await gateway.stop(0)


@pytest.fixture(scope="session")
async def gateway(pki: Pki, cells: Cells, spans: InMemorySpanExporter) -> AsyncIterator[Gateway]:
    """The shared gateway routing both accounts' namespaces; its routes never change."""
    source = StaticRouteSource(
        [
            route(NAMESPACE_A, cells.address_a, pki.ca_a),
            route(NAMESPACE_B, cells.address_b, pki.ca_b),
        ]
    )
    gateway = Gateway(
        "127.0.0.1",
        0,
        server_cert_pem=pki.gateway_server.cert_pem,
        server_key_pem=pki.gateway_server.key_pem,
        route_source=source,
        issuer=pki.gateway_ca,
    )
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop(0)


@pytest.fixture(scope="session")
async def client_a(gateway: Gateway, pki: Pki) -> Client:
    return await Client.connect(
        f"127.0.0.1:{gateway.bound_port}", namespace=NAMESPACE_A, tls=pki.tls(pki.client_a)
    )


@contextlib.asynccontextmanager
async def _raw_channel(
    pki: Pki, port: int, client: KeyPair | None, namespace: str | None = NAMESPACE_A
) -> AsyncIterator[grpc.aio.Channel]:
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{port}",
        pki.channel_credentials(client),
        options=[("grpc.ssl_target_name_override", server_name(namespace))],
    )
    try:
        yield channel
    finally:
        await channel.close(None)


@pytest.fixture(scope="session")
def raw_channel(pki: Pki) -> RawChannel:
    """Opens a plain gRPC channel to a gateway, for calls the SDK would never make."""

    def open_channel(
        port: int, client: KeyPair | None, namespace: str | None = NAMESPACE_A
    ) -> contextlib.AbstractAsyncContextManager[grpc.aio.Channel]:
        return _raw_channel(pki, port, client, namespace)

    return open_channel
