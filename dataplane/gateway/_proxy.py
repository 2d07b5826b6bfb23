"""The request path: admit a WorkflowService call for its namespace and forward its bytes."""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from dataclasses import dataclass
from typing import cast

import grpc
import grpc.aio
from google.protobuf.message import DecodeError, Message
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from temporalio.api.workflowservice.v1.request_response_pb2 import (
    DescribeNamespaceRequest,
    GetClusterInfoResponse,
)

from dataplane.cells import CellTls, grpc_channel
from dataplane.gateway._admission import Admissions, Decision
from dataplane.gateway._api_keys import KeyVerificationUnavailable, KeyVerifier, VerifiedKey
from dataplane.gateway._descriptions import CellAnswers
from dataplane.gateway._key_guard import (
    KeyGuard,
    KeyRefusal,
    KeyRefused,
    KeyVerificationThrottled,
    source_of,
)
from dataplane.gateway._limits import (
    BucketTable,
    CallerLimits,
    NamespaceLimiter,
    RateLimitExceeded,
    actions_of,
)
from dataplane.gateway._methods import METHODS, Method, NamespacedRequest
from dataplane.gateway._metrics import GatewayMetrics
from dataplane.gateway._nested import MalformedTaskToken, nested_references
from dataplane.gateway._policy import OPERATOR_SERVICE, WORKFLOW_SERVICE, Handling
from dataplane.gateway._routes import Route, RouteTable
from dataplane.gateway._terminator import PeerRegistry
from dataplane.gateway._tls import ServerNames

logger = logging.getLogger(__name__)

TRACER_NAME = "stratus.gateway"

# Larger than Temporal's own 4 MiB default so the gateway never is the tighter limit.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)
# A removed cell's channel stays usable this long so calls already on it can finish.
_CHANNEL_CLOSE_GRACE = 30.0
_MAX_CLUSTER_ROUTES = 4096
_MAX_LISTED_NAMESPACES = 100
_DESCRIBE_TIMEOUT_SECONDS = 10.0
_SYSTEM_INFO = f"/{WORKFLOW_SERVICE}/GetSystemInfo"
# The operator log names an unavailable cell at most this often (every call would flood it).
_CELL_LOG_INTERVAL = 10.0

_NAMESPACE_HEADER = "temporal-namespace"
# Credentials meant for the gateway and transport headers gRPC sets itself per hop.
_DROPPED_HEADERS = frozenset(
    {
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "host",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "user-agent",
    }
)
# Codes that mean the server failed (OpenTelemetry gRPC semantic conventions).
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

Metadata = tuple[tuple[str, str | bytes], ...]
Context = grpc.aio.ServicerContext[bytes, bytes]


class AuthMode(enum.Enum):
    """How callers of a gateway endpoint authenticate."""

    MTLS = "mtls"
    API_KEY = "api_key"


@dataclass(frozen=True, slots=True)
class _Caller:
    mode: AuthMode
    certificate: bytes = b""
    certificate_id: bytes = b""
    key: VerifiedKey | None = None
    # mTLS: the namespace the connection's TLS server name bound it to; nothing else is usable.
    bound_namespace: str | None = None

    @property
    def cache_id(self) -> bytes:
        if self.key is not None:
            return self.key.key_id.encode()
        return self.certificate_id


@dataclass(frozen=True, slots=True)
class _Admitted:
    """What an admitted call may use."""

    namespace: str
    route: Route
    metadata: Metadata
    caller: _Caller


class _Refusal(Exception):
    """The gateway answers the call itself with ``code`` (it never reaches a cell)."""

    def __init__(self, code: grpc.StatusCode, message: str, namespace: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.namespace = namespace


def _forwarded_metadata(context: Context) -> tuple[Metadata, str | None]:
    """The caller's metadata minus per-hop and credential headers, plus its namespace header.

    A request carrying the namespace header more than once (in any letter case) is refused:
    components that read the first value and components that read the last one would
    otherwise disagree about which namespace the call is for."""
    header_namespace: str | None = None
    forwarded: list[tuple[str, str | bytes]] = []
    for key, value in context.invocation_metadata() or ():
        if key.lower() == _NAMESPACE_HEADER:
            if header_namespace is not None:
                raise _Refusal(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "the temporal-namespace header is sent more than once; send it once, "
                    "with the namespace of the request body",
                )
            header_namespace = value if isinstance(value, str) else value.decode(errors="replace")
        if key in _DROPPED_HEADERS or key[0] == ":" or key.startswith("grpc-"):
            continue
        forwarded.append((key, value))
    return tuple(forwarded), header_namespace


def _check_nested(method: Method, message: Message, namespace: str, route: Route) -> None:
    """Every namespace nested in the request (workflow commands, multi-operation requests,
    batch operations, ...) must be the admitted one, and every task token must belong to it:
    otherwise a client admitted for one namespace could act on another (the class of
    CVE-2023-3485, CVE-2025-14986, CVE-2025-14987, CVE-2026-5199)."""
    try:
        nested = nested_references(message)
    except MalformedTaskToken as exc:
        raise _Refusal(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{method.name}: task_token is not a valid Temporal task token ({exc}); pass the "
            "token exactly as the server issued it",
            namespace,
        ) from None
    for other in nested.namespaces:
        if other != namespace:
            raise _Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method.name} for namespace {namespace} refers to namespace {other}; a "
                "request may only act on the namespace it is sent to",
                namespace,
            )
    for token_namespace_id in nested.task_token_namespace_ids:
        if not route.cell_namespace_id or token_namespace_id != route.cell_namespace_id:
            raise _Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method.name}: the task token does not belong to namespace {namespace}; "
                "respond to tasks only in the namespace that polled them",
                namespace,
            )


UpstreamKey = tuple[str, str, CellTls | None]


class _Upstream:
    """One channel to a cell (TLS with the cell's client certificate when the cell has TLS,
    plaintext otherwise) and its per-method callables, built once."""

    def __init__(self, address: str, tls: CellTls | None) -> None:
        self.channel = grpc_channel(address, tls, list(CHANNEL_OPTIONS))
        self._calls: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = {}

    def call(self, path: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        call = self._calls.get(path)
        if call is None:
            # No serializers: request and response bytes pass through untouched.
            call = self._calls[path] = self.channel.unary_unary(path, None, None)
        return call


class Proxy:
    """Admits each call against the current route table and forwards it to its cell.

    One proxy serves both gateway endpoints (mTLS and API key), so a namespace's rate limits
    and counters are shared whichever way its workers authenticate.
    """

    def __init__(
        self,
        key_verifier: KeyVerifier | None = None,
        caller_limits: CallerLimits | None = None,
        *,
        peers: PeerRegistry | None = None,
        names: ServerNames | None = None,
    ) -> None:
        caller_limits = caller_limits or CallerLimits()
        self._key_guard = None if key_verifier is None else KeyGuard(key_verifier, caller_limits)
        self._namespaceless_limit = caller_limits.namespaceless_requests_per_second
        self._namespaceless_buckets = BucketTable(self._namespaceless_limit)
        self._cell_answers = CellAnswers()
        self._peers = peers if peers is not None else PeerRegistry()
        self._names = names or ServerNames()
        self._tracer = trace.get_tracer(TRACER_NAME)
        self._table = RouteTable()
        self._admissions = Admissions()
        self._upstreams: dict[UpstreamKey, _Upstream] = {}
        # When the operator log last named each unavailable cell (and why).
        self._cell_logged: dict[tuple[str, str], float] = {}
        # Cluster-level calls: which route admits a certificate, memoized per table.
        self._cluster_routes: dict[bytes, Route] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._limiter = NamespaceLimiter()
        self.metrics = GatewayMetrics()

    @property
    def table(self) -> RouteTable:
        return self._table

    def apply(self, table: RouteTable) -> None:
        """Serve ``table`` from the next call on; retire channels to cells no longer routed, or
        routed at another address or with other TLS material (calls already on a retired
        channel finish on it)."""
        self._table = table
        self._cluster_routes = {}
        self._limiter.retain(set(table.routes))
        self._cell_answers.retain(table.routes)
        live = {route.upstream_key for route in table.routes.values()}
        for key in [key for key in self._upstreams if key not in live]:
            upstream = self._upstreams.pop(key)
            task = asyncio.get_running_loop().create_task(
                upstream.channel.close(grace=_CHANNEL_CLOSE_GRACE)
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        upstreams, self._upstreams = self._upstreams, {}
        await asyncio.gather(*(upstream.channel.close(None) for upstream in upstreams.values()))
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)

    def method_handlers(
        self, mode: AuthMode = AuthMode.MTLS
    ) -> dict[str, grpc.RpcMethodHandler[bytes, bytes]]:
        """One raw-bytes handler per served method, keyed by its full path, for the endpoint
        whose callers authenticate by ``mode``."""
        return {method.path: self._handler(method, mode) for method in METHODS.values()}

    def _handler(self, method: Method, mode: AuthMode) -> grpc.RpcMethodHandler[bytes, bytes]:
        async def behavior(request: bytes, context: Context) -> bytes:
            return await self._serve(method, request, context, mode)

        return grpc.unary_unary_rpc_method_handler(behavior)

    def unimplemented_handler(self, path: str) -> grpc.RpcMethodHandler[bytes, bytes]:
        async def behavior(request: bytes, context: Context) -> bytes:
            span = self._tracer.start_span(
                path, kind=SpanKind.SERVER, attributes={"rpc.system": "grpc", "rpc.method": path}
            )
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.UNIMPLEMENTED.value[0])
            span.end()
            await context.abort(
                grpc.StatusCode.UNIMPLEMENTED,
                f"{path} is not served by Stratus; the gateway serves {WORKFLOW_SERVICE} and "
                f"the namespace-scoped part of {OPERATOR_SERVICE}",
            )

        return grpc.unary_unary_rpc_method_handler(behavior)

    async def _serve(
        self, method: Method, request: bytes, context: Context, mode: AuthMode
    ) -> bytes:
        started = time.perf_counter()
        span = self._tracer.start_span(
            method.name, kind=SpanKind.SERVER, attributes=method.span_attributes
        )
        namespace = ""
        trailers: Metadata = ()
        route: Route | None = None
        try:
            caller = await self._caller(mode, context)
            admitted = self._admit(method, request, context, caller)
            namespace, route = admitted.namespace, admitted.route
            if method.handling is Handling.GATEWAY:
                response = await self._answer(method, admitted, context)
            elif method.path == _SYSTEM_INFO:
                # The same for every caller of a cell (SDKs ask on every connect): kept.
                response = await self._cell_answers.system_info(admitted.route, self._system_info)
            else:
                response = await self._forward(
                    method, admitted.route, request, admitted.metadata, context
                )
        except _Refusal as refusal:
            namespace, code, details = refusal.namespace, refusal.code, refusal.message
        except grpc.aio.AioRpcError as error:
            code = error.code()
            details, trailers = _cell_error(error, namespace)
            if route is not None and code is grpc.StatusCode.UNAVAILABLE and not trailers:
                # Not reached (refused connection, failed TLS handshake): the operator's to fix.
                self._log_cell_unavailable(route, error.details() or "unreachable")
        except asyncio.CancelledError:
            self._finish(span, method, namespace, grpc.StatusCode.CANCELLED, started)
            raise
        except grpc.aio.UsageError:
            # The cell's channel was retired by a route change just as this call started.
            code, details = grpc.StatusCode.UNAVAILABLE, _unavailable(namespace)
        except Exception:
            logger.exception("gateway failed to proxy %s for %r", method.name, namespace)
            code, details = grpc.StatusCode.INTERNAL, "internal gateway error; retry the call"
        else:
            self._finish(span, method, namespace, grpc.StatusCode.OK, started)
            return response
        # End the span first: abort() sends the status before it raises.
        self._finish(span, method, namespace, code, started)
        await context.abort(code, details, trailers)

    def _finish(
        self,
        span: Span,
        method: Method,
        namespace: str,
        code: grpc.StatusCode,
        started: float,
    ) -> None:
        _end_span(span, namespace, code)
        routed = namespace if namespace in self._table.routes else ""
        self.metrics.record(routed, method.name, code, time.perf_counter() - started)

    async def _caller(self, mode: AuthMode, context: Context) -> _Caller:
        """Who is calling: the TLS client certificate on the mTLS endpoint, the bearer API key
        (verified with the control plane within the key guard's limits) on the API-key
        endpoint."""
        if mode is AuthMode.MTLS:
            identity = self._peers.get(context.peer())
            if identity is None:
                # Only the gateway's TLS listener relays to this server; refuse anything else.
                raise _Refusal(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "connect through the gateway's TLS endpoint with your client certificate",
                )
            if identity.namespace is None or not identity.certificate_pem:
                raise _Refusal(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "no client certificate was presented; connect with the certificate and key "
                    "issued for your namespace and the server name <namespace id>"
                    f"{self._names.for_namespace('')} (temporalio: TLSConfig(client_cert=..., "
                    "client_private_key=..., domain=...))",
                )
            return _Caller(
                mode,
                identity.certificate_pem,
                identity.certificate_id,
                bound_namespace=identity.namespace,
            )
        token = _bearer_token(context)
        if self._key_guard is None:
            raise _Refusal(grpc.StatusCode.UNAVAILABLE, "API keys are not enabled on this gateway")
        try:
            key = await self._key_guard.verify(token, source_of(context.peer()))
        except KeyRefused as refused:
            if refused.refusal is KeyRefusal.MALFORMED:
                raise _Refusal(
                    grpc.StatusCode.UNAUTHENTICATED,
                    "the API key is malformed: a Stratus API key is stratus_<key id>_<secret> "
                    "as `stratus apikey create` printed it; send it whole as "
                    "`authorization: Bearer <key>`",
                ) from None
            raise _Refusal(
                grpc.StatusCode.UNAUTHENTICATED,
                "the API key is unknown, malformed, expired, disabled or deleted; create a key "
                "with `stratus apikey create` and send it as `authorization: Bearer <key>`",
            ) from None
        except KeyVerificationThrottled as throttled:
            raise _Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, str(throttled)) from None
        except KeyVerificationUnavailable:
            logger.warning("API key verification unavailable", exc_info=True)
            raise _Refusal(
                grpc.StatusCode.UNAVAILABLE, "API keys cannot be verified right now; retry shortly"
            ) from None
        return _Caller(mode, key=key)

    def _decide(self, caller: _Caller, route: Route) -> Decision:
        if caller.mode is AuthMode.API_KEY:
            if not route.auth_method.accepts_api_keys:
                return Decision.WRONG_AUTH_METHOD
            assert caller.key is not None
            if route.namespace_id not in caller.key.namespace_permissions:
                return Decision.UNTRUSTED
            return Decision.ADMITTED
        if not route.auth_method.accepts_client_certificates:
            return Decision.WRONG_AUTH_METHOD
        if route.namespace_id != caller.bound_namespace:
            return Decision.OTHER_CONNECTION
        return self._admissions.decide(
            caller.certificate,
            caller.certificate_id,
            route.namespace_id,
            route.accepted_client_ca,
            route.certificate_filters,
        )

    def _admits(self, caller: _Caller, route: Route) -> bool:
        return self._decide(caller, route) is Decision.ADMITTED

    def _upstream(self, route: Route) -> _Upstream:
        key = route.upstream_key
        upstream = self._upstreams.get(key)
        if upstream is None:
            upstream = self._upstreams[key] = _Upstream(route.cell_address, route.cell_tls)
        return upstream

    def _log_cell_unavailable(self, route: Route, reason: str) -> None:
        """Name the cell and why it is not served in the operator log (tenants only learn
        that their namespace is temporarily unavailable)."""
        now = time.monotonic()
        key = (route.cell_name, reason)
        if now - self._cell_logged.get(key, -_CELL_LOG_INTERVAL) < _CELL_LOG_INTERVAL:
            return
        if len(self._cell_logged) >= _MAX_CLUSTER_ROUTES:
            self._cell_logged.clear()
        self._cell_logged[key] = now
        logger.warning(
            "cell %s (%s) unavailable for namespace %s: %s",
            route.cell_name,
            route.cell_address,
            route.namespace_id,
            reason,
        )

    def _raise_if_cell_unavailable(self, route: Route, namespace: str) -> None:
        if route.cell_unavailable:
            self._log_cell_unavailable(route, route.cell_unavailable)
            raise _Refusal(grpc.StatusCode.UNAVAILABLE, _unavailable(namespace), namespace)

    async def _forward(
        self, method: Method, route: Route, request: bytes, metadata: Metadata, context: Context
    ) -> bytes:
        return await self._upstream(route).call(method.path)(
            request, timeout=context.time_remaining(), metadata=metadata
        )

    async def _answer(self, method: Method, admitted: _Admitted, context: Context) -> bytes:
        """Methods the gateway answers itself, from what the caller may see."""
        if method.name == "ListNamespaces":
            return await self._list_namespaces(admitted, context)
        if method.name == "GetClusterInfo":
            raw = await self._forward(method, admitted.route, b"", admitted.metadata, context)
            info = GetClusterInfoResponse.FromString(raw)
            # Cluster internals (ids, names, shard counts, stores) are the operator's business.
            return GetClusterInfoResponse(
                supported_clients=info.supported_clients,
                server_version=info.server_version,
                version_info=info.version_info,
            ).SerializeToString()
        raise _Refusal(grpc.StatusCode.UNIMPLEMENTED, f"{method.name} is not served by Stratus")

    async def _list_namespaces(self, admitted: _Admitted, context: Context) -> bytes:
        """Only the namespaces the caller is admitted to, as their cells describe them (kept
        by the gateway for a few seconds, see ``_descriptions``); never another tenant's,
        never a cell's own (``default``, ``temporal-system``). Namespaces on a cell that may not
        be called (unhealthy, unknown) are left out rather than failing the whole list."""
        visible = sorted(
            (
                route
                for route in self._table.routes.values()
                if not route.cell_unavailable and self._admits(admitted.caller, route)
            ),
            key=lambda route: route.namespace_id,
        )[:_MAX_LISTED_NAMESPACES]
        raws = await self._cell_answers.describe_all(visible, self._describe_namespace)
        # ListNamespacesResponse is ``repeated DescribeNamespaceResponse namespaces = 1``:
        # each element on the wire is tag 1 (length-delimited) + length + the message bytes.
        return b"".join(b"\x0a" + _varint(len(raw)) + raw for raw in raws)

    async def _system_info(self, route: Route) -> bytes:
        return await self._upstream(route).call(_SYSTEM_INFO)(
            b"", timeout=_DESCRIBE_TIMEOUT_SECONDS
        )

    async def _describe_namespace(self, route: Route) -> bytes:
        describe = METHODS[f"/{WORKFLOW_SERVICE}/DescribeNamespace"]
        request = DescribeNamespaceRequest(namespace=route.namespace_id).SerializeToString()
        # Not the caller's metadata or deadline: the answer is shared by every caller of the
        # namespace.
        return await self._upstream(route).call(describe.path)(
            request, timeout=_DESCRIBE_TIMEOUT_SECONDS
        )

    def _admit(
        self, method: Method, request: bytes, context: Context, caller: _Caller
    ) -> _Admitted:
        """The request contract: method policy, body, namespace, route, caller identity,
        permission, nested namespaces, limits. Returns what the call may use, or raises."""
        try:
            message = method.message(request)
        except DecodeError as exc:
            raise _Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body is not a valid {method.name}Request ({exc}); send the "
                f"{method.service.rsplit('.', 1)[0]} request message for this method",
            ) from None
        if method.handling is Handling.DENIED:
            raise _Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method.name} is not allowed: {method.policy.reason}",
            )
        metadata, header_namespace = _forwarded_metadata(context)
        if method.handling is not Handling.NAMESPACE:
            if not self._namespaceless_buckets.bucket(caller.cache_id).take(1):
                credential = "client certificate" if caller.mode is AuthMode.MTLS else "API key"
                raise _Refusal(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this {credential} exceeded its limit of {self._namespaceless_limit} "
                    "requests per second for calls without a namespace (GetSystemInfo, "
                    "GetSearchAttributes, ListNamespaces, GetClusterInfo); slow down and retry",
                )
            return _Admitted("", self._cluster_route(method, caller), metadata, caller)

        namespace = cast(NamespacedRequest, message).namespace
        if not namespace:
            raise _Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{method.name} request has no namespace; set your client's namespace to your "
                "Stratus namespace id (<name>.<account_id>)",
            )
        if header_namespace is not None and header_namespace != namespace:
            raise _Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the temporal-namespace header names namespace {header_namespace} but the "
                f"request body names namespace {namespace}; send both with the same namespace",
                namespace,
            )
        if caller.bound_namespace is not None and namespace != caller.bound_namespace:
            # Before the route lookup: whether another namespace exists is not this caller's
            # business (NOT_FOUND vs PERMISSION_DENIED would tell it).
            _raise_unless_admitted(Decision.OTHER_CONNECTION, caller, namespace)
        route = self._table.routes.get(namespace)
        if route is None:
            raise _Refusal(
                grpc.StatusCode.NOT_FOUND,
                f"namespace {namespace} not found; check the namespace id "
                "(<name>.<account_id>) and that the namespace is active",
                namespace,
            )
        _raise_unless_admitted(self._decide(caller, route), caller, namespace)
        # Only an admitted caller learns that the namespace's account is suspended.
        _raise_if_suspended(route, namespace)
        if caller.key is not None and method.permission is not None:
            held = caller.key.namespace_permissions[namespace]
            if held < method.permission:
                raise _Refusal(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{method.name} needs {method.permission.name.lower()} permission on "
                    f"namespace {namespace}; this API key's principal holds "
                    f"{held.name.lower()}",
                    namespace,
                )
        if method.may_nest:
            _check_nested(method, message, namespace, route)
        # Only an admitted caller learns that the namespace exists but its cell is down.
        self._raise_if_cell_unavailable(route, namespace)
        actions = actions_of(method.name, message)
        try:
            self._limiter.admit(namespace, route.limits, actions)
        except RateLimitExceeded as exceeded:
            raise _Refusal(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{exceeded}; slow down and retry (limits are shown on the namespace)",
                namespace,
            ) from None
        self.metrics.record_actions(namespace, actions)
        return _Admitted(namespace, route, metadata, caller)

    def _cluster_route(self, method: Method, caller: _Caller) -> Route:
        """Any route the caller is admitted to: cluster reads are the same on all cells. An mTLS
        connection is bound to its namespace: that route, or the precise refusal for it."""
        if caller.bound_namespace is not None:
            bound = self._table.routes.get(caller.bound_namespace)
            if bound is None:
                raise _Refusal(
                    grpc.StatusCode.NOT_FOUND,
                    f"namespace {caller.bound_namespace} not found; check the namespace id "
                    "(<name>.<account_id>) and that the namespace is active",
                    caller.bound_namespace,
                )
            _raise_unless_admitted(self._decide(caller, bound), caller, caller.bound_namespace)
            _raise_if_suspended(bound, caller.bound_namespace)
            self._raise_if_cell_unavailable(bound, caller.bound_namespace)
            return bound
        route = self._cluster_routes.get(caller.cache_id)
        if route is None or not self._admits(caller, route):
            admitted = [
                candidate
                for candidate in self._table.routes.values()
                if self._admits(caller, candidate)
            ]
            # Cluster reads are the same on every cell: prefer one whose cell is available.
            route = next(
                (candidate for candidate in admitted if not candidate.cell_unavailable),
                admitted[0] if admitted else None,
            )
            if route is not None:
                if len(self._cluster_routes) >= _MAX_CLUSTER_ROUTES:
                    self._cluster_routes.clear()
                self._cluster_routes[caller.cache_id] = route
        if route is None:
            credential = "client certificate" if caller.mode is AuthMode.MTLS else "API key"
            raise _Refusal(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method.name} refused: the {credential} is not accepted for any namespace; "
                "use a credential your namespace accepts",
            )
        if route.cell_unavailable:
            self._log_cell_unavailable(route, route.cell_unavailable)
            raise _Refusal(grpc.StatusCode.UNAVAILABLE, _unavailable(""))
        return route


def _raise_if_suspended(route: Route, namespace: str) -> None:
    if route.suspended:
        raise _Refusal(
            grpc.StatusCode.PERMISSION_DENIED,
            f"namespace {namespace} refused: {route.suspended}",
            namespace,
        )


def _raise_unless_admitted(decision: Decision, caller: _Caller, namespace: str) -> None:
    if decision is Decision.ADMITTED:
        return
    if decision is Decision.OTHER_CONNECTION:
        raise _Refusal(
            grpc.StatusCode.PERMISSION_DENIED,
            f"this connection is for namespace {caller.bound_namespace} (its TLS server name); "
            f"a request for namespace {namespace} needs a connection whose server name names "
            "that namespace, with a certificate that namespace accepts",
            namespace,
        )
    if decision is Decision.WRONG_AUTH_METHOD:
        if caller.mode is AuthMode.MTLS:
            hint = (
                "it accepts API keys only; connect to the gateway's API-key endpoint with "
                "`authorization: Bearer <api key>`"
            )
        else:
            hint = (
                "it accepts mTLS client certificates only; connect to the gateway's mTLS "
                "endpoint with a certificate from its accepted client CA"
            )
        raise _Refusal(grpc.StatusCode.UNAUTHENTICATED, f"namespace {namespace}: {hint}", namespace)
    if caller.mode is AuthMode.API_KEY:
        raise _Refusal(
            grpc.StatusCode.PERMISSION_DENIED,
            f"this API key's principal has no permission on namespace {namespace}; grant it "
            "with `stratus user set-namespace-permissions` or use a key of that namespace",
            namespace,
        )
    if decision is Decision.FILTERED:
        raise _Refusal(
            grpc.StatusCode.PERMISSION_DENIED,
            f"client certificate is not accepted for namespace {namespace}: it matches "
            "none of the namespace's certificate filters; use a certificate whose subject "
            "matches one of them",
            namespace,
        )
    raise _Refusal(
        grpc.StatusCode.PERMISSION_DENIED,
        f"client certificate is not accepted for namespace {namespace}; use a "
        "certificate issued by a CA in that namespace's accepted client CA bundle",
        namespace,
    )


def _bearer_token(context: Context) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            text = value if isinstance(value, str) else value.decode(errors="replace")
            scheme, _, token = text.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise _Refusal(
        grpc.StatusCode.UNAUTHENTICATED,
        "no API key: send `authorization: Bearer <api key>` (temporalio: Client.connect(..., "
        "api_key=...)) or use the mTLS endpoint with a client certificate",
    )


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _end_span(span: Span, namespace: str, code: grpc.StatusCode) -> None:
    if namespace:
        span.set_attribute("temporal.namespace", namespace)
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, code.name))
    span.end()


def _unavailable(namespace: str) -> str:
    subject = f"namespace {namespace}" if namespace else "the cluster"
    return f"{subject} is temporarily unavailable; retry shortly"


def _cell_error(error: grpc.aio.AioRpcError, namespace: str) -> tuple[str, Metadata]:
    """The cell's status to relay: its details and trailers (``grpc-status-details-bin``
    carries the typed Temporal failure the SDK decodes)."""
    # grpc.aio yields (key, value) pairs; grpc-stubs type this as the sync API's objects.
    trailers = cast(Metadata, tuple(error.trailing_metadata() or ()))
    if error.code() is grpc.StatusCode.UNAVAILABLE and not trailers:
        # The cell was not reached (no trailers from a server); do not leak its address.
        return _unavailable(namespace), trailers
    return error.details() or "", trailers
