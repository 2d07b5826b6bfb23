"""The gateway process: an mTLS listener in front of every cell, verifying each client
certificate against the CAs of the namespace its TLS server name asks for."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry

from auth import KeyPair
from dataplane.gateway._api_keys import KeyVerifier
from dataplane.gateway._limits import CallerLimits
from dataplane.gateway._proxy import MAX_MESSAGE_BYTES, AuthMode, Proxy
from dataplane.gateway._routes import RouteSource, RouteTable
from dataplane.gateway._terminator import PeerRegistry, TlsTerminator
from dataplane.gateway._tls import DEFAULT_DOMAIN, NamespaceContexts, ServerNames

logger = logging.getLogger(__name__)

# Temporal's own gRPC default; a larger request is refused with RESOURCE_EXHAUSTED by gRPC.
DEFAULT_MAX_REQUEST_BYTES = 4 * 1024 * 1024
# All metadata of one call (an oversized header was CVE-2025-8396's vector).
DEFAULT_MAX_METADATA_BYTES = 16 * 1024


def _server_options(max_request_bytes: int, max_metadata_bytes: int) -> list[tuple[str, int]]:
    return [
        # Responses (history pages) may be as large as the cells send.
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", max_request_bytes),
        ("grpc.max_metadata_size", max_metadata_bytes),
        ("grpc.absolute_max_metadata_size", max_metadata_bytes),
        # Two gateways must never silently share a port.
        ("grpc.so_reuseport", 0),
    ]


# The standard gRPC health check, answered by the gateway itself (namespace-less, allowed to
# any caller that completed the endpoint's TLS handshake). Watch is not served.
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
# grpc.health.v1.HealthCheckResponse{status: SERVING | NOT_SERVING}, encoded by hand: the
# gateway does not depend on grpcio-health-checking for two constant messages.
SERVING = b"\x08\x01"
NOT_SERVING = b"\x08\x02"


class _Health:
    """The gateway's readiness as its gRPC health check reports it: NOT_SERVING until the first
    route table is applied and again once the gateway is stopping, SERVING in between."""

    def __init__(self) -> None:
        self.serving = False
        self.handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
            self._check
        )

    async def _check(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        return SERVING if self.serving else NOT_SERVING


class _Handlers(grpc.GenericRpcHandler):  # type: ignore[type-arg]  # stub generics
    """Finds each call's handler: a WorkflowService method's, else an UNIMPLEMENTED refusal.

    One generic handler with a dict lookup, not ``add_registered_method_handlers``: with
    all ~120 WorkflowService methods registered, grpc.aio spent ~0.08 ms more on every
    call (measured side by side against this lookup, which costs about a microsecond).
    """

    def __init__(self, proxy: Proxy, mode: AuthMode, health: _Health) -> None:
        self._proxy = proxy
        self._health = health
        self._handlers = proxy.method_handlers(mode)

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes]:
        if handler_call_details.method == HEALTH_CHECK:
            return self._health.handler
        handler = self._handlers.get(handler_call_details.method)
        if handler is None:
            return self._proxy.unimplemented_handler(handler_call_details.method)
        return handler


class Gateway:
    """TLS gRPC ingress that proxies Temporal's WorkflowService to the cell of each namespace.

    A worker names its namespace in the TLS server name (``<namespace id>.<domain>``); the
    handshake then requires a client certificate chaining to that namespace's accepted client
    CAs and nothing else, and the connection is bound to that namespace. Each call is admitted
    only if the namespace in its body is the connection's, routed, and the certificate passes
    the namespace's filters; its bytes are then forwarded unchanged. The route source is polled
    every ``refresh_interval`` seconds, so routing and trust follow the control plane without a
    restart. Server certificates for namespace names are issued by ``issuer``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        server_cert_pem: bytes,
        server_key_pem: bytes,
        route_source: RouteSource,
        refresh_interval: float = 0.5,
        issuer: KeyPair,
        domain: str = DEFAULT_DOMAIN,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES,
        api_key_port: int | None = None,
        key_verifier: KeyVerifier | None = None,
        caller_limits: CallerLimits | None = None,
    ) -> None:
        """``api_key_port`` opens a second TLS endpoint that does not ask for a client
        certificate; its callers authenticate with ``authorization: Bearer <api key>``,
        verified by ``key_verifier``. Namespaces choose which endpoint(s) may serve them.
        ``caller_limits`` are the limits held per caller and per source address."""
        self._address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._route_source = route_source
        self._refresh_interval = refresh_interval
        self._host = host
        self._port = port
        self.server_names = ServerNames(domain)
        self._contexts = NamespaceContexts(
            names=self.server_names,
            default_cert_pem=server_cert_pem,
            default_key_pem=server_key_pem,
            issuer=issuer,
        )
        self._peers = PeerRegistry()
        self._health = _Health()
        self._terminator: TlsTerminator | None = None
        self._proxy = Proxy(key_verifier, caller_limits, peers=self._peers, names=self.server_names)
        self._api_key_address = (
            None
            if api_key_port is None
            else (f"[{host}]:{api_key_port}" if ":" in host else f"{host}:{api_key_port}")
        )
        self._server_cert_pem = server_cert_pem
        self._server_key_pem = server_key_pem
        self._api_key_server: grpc.aio.Server | None = None
        self._bound_api_key_port: int | None = None
        self._options = _server_options(max_request_bytes, max_metadata_bytes)
        self._server: grpc.aio.Server | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._bound_port: int | None = None

    @property
    def bound_port(self) -> int:
        """The port the listener is bound to (useful when constructed with port 0)."""
        if self._bound_port is None:
            raise RuntimeError("gateway is not started")
        return self._bound_port

    @property
    def metrics(self) -> CollectorRegistry:
        """Prometheus registry with the gateway's per-namespace, per-method counters."""
        return self._proxy.metrics.registry

    @property
    def routes(self) -> RouteTable:
        """The route table currently served."""
        return self._proxy.table

    @property
    def serving(self) -> bool:
        """Ready: a route table is applied and the gateway is not stopping (what its gRPC
        health check answers on both endpoints)."""
        return self._health.serving

    async def start(self) -> None:
        """Bind the listeners, load routes once and start following the route source.

        The health check answers NOT_SERVING until a route table is applied: when the first
        load fails (the control plane is not up yet), the next poll's success flips it."""
        if self._server is not None:
            raise RuntimeError("gateway already started")
        server = grpc.aio.server(options=self._options)
        server.add_generic_rpc_handlers((_Handlers(self._proxy, AuthMode.MTLS, self._health),))
        # Plaintext on loopback, reached only through the TLS terminator's relay (whose
        # connections carry the identities; any other connection has none and is refused).
        backend_port = server.add_insecure_port("127.0.0.1:0")
        if backend_port == 0:
            raise RuntimeError("gateway could not bind its loopback gRPC server")
        await server.start()
        self._server = server
        terminator = TlsTerminator(
            self._host,
            self._port,
            contexts=self._contexts,
            registry=self._peers,
            backend_port=backend_port,
        )
        try:
            await terminator.start()
        except OSError as exc:
            await server.stop(None)
            self._server = None
            raise RuntimeError(f"gateway could not bind {self._address}: {exc}") from exc
        self._terminator = terminator
        port = self._bound_port = terminator.bound_port
        if self._api_key_address is not None:
            await self._start_api_key_endpoint(self._api_key_address)
        try:
            await self.refresh()
        except Exception:
            logger.warning("gateway routes not loaded yet; retrying", exc_info=True)
        self._refresher = asyncio.create_task(self._follow_routes(), name="gateway-routes")
        logger.info("gateway listening on %s (port %d)", self._address, port)

    async def _start_api_key_endpoint(self, address: str) -> None:
        server = grpc.aio.server(options=self._options)
        server.add_generic_rpc_handlers((_Handlers(self._proxy, AuthMode.API_KEY, self._health),))
        credentials = grpc.ssl_server_credentials(
            [(self._server_key_pem, self._server_cert_pem)], require_client_auth=False
        )
        port = server.add_secure_port(address, credentials)
        if port == 0:
            raise RuntimeError(f"gateway could not bind {address}")
        await server.start()
        self._api_key_server = server
        self._bound_api_key_port = port
        logger.info("gateway API-key endpoint listening on %s (port %d)", address, port)

    @property
    def bound_api_key_port(self) -> int:
        if self._bound_api_key_port is None:
            raise RuntimeError("the API-key endpoint is not started")
        return self._bound_api_key_port

    async def stop(self, grace: float) -> None:
        """Stop accepting calls, let calls in flight finish for up to ``grace`` seconds."""
        self._health.serving = False
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        # No new worker connections; calls in flight get ``grace`` to finish (both endpoints
        # drain at once), then the relayed connections are closed.
        if self._terminator is not None:
            self._terminator.stop_accepting()
        servers = [s for s in (self._api_key_server, self._server) if s is not None]
        await asyncio.gather(*(server.stop(grace) for server in servers))
        self._api_key_server = None
        self._bound_api_key_port = None
        self._server = None
        if self._terminator is not None:
            await self._terminator.stop()
            self._terminator = None
        await self._proxy.close()
        self._contexts.close()
        self._bound_port = None

    async def refresh(self) -> None:
        """Fetch the route table once and apply it if its version changed."""
        self._route_source.report_throttled(self._proxy.metrics.throttled)
        self._route_source.report_latency(self._proxy.metrics.namespace_latency)
        table = await self._route_source.fetch()
        if table is None or (self._health.serving and table.version == self.routes.version):
            return
        rejected = {**table.dropped, **self._contexts.apply(table)}
        if rejected:
            table = RouteTable.of(
                (route for ns, route in table.routes.items() if ns not in rejected), table.version
            )
        self._proxy.apply(table)
        self._route_source.report(rejected)
        self._health.serving = True
        logger.info(
            "gateway routes now at version %d (%d namespaces, %d not served)",
            table.version,
            len(table.routes),
            len(rejected),
        )

    async def _follow_routes(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_interval)
            try:
                await self.refresh()
            except Exception:
                # A broken source must not stop the gateway; keep serving the last table.
                logger.warning("gateway route refresh failed", exc_info=True)


async def gateway_serving(
    host: str, port: int, *, ca_pem: bytes, server_name: str = "localhost", timeout: float = 2.0
) -> bool:
    """True when the gateway's API-key endpoint at ``host:port`` answers its gRPC health check
    SERVING (TLS trusting ``ca_pem``; the check needs no API key). The mTLS endpoint answers
    the same, but only to a namespace's client certificate."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    options = [("grpc.ssl_target_name_override", server_name)]
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    async with grpc.aio.secure_channel(target, credentials, options=options) as channel:
        try:
            answer = await channel.unary_unary(HEALTH_CHECK, None, None)(b"", timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
    return bool(answer == SERVING)
