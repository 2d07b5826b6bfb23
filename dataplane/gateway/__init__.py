"""The data-plane gateway: the mTLS gRPC ingress that SDK workers connect to.

It serves Temporal's ``WorkflowService`` and the namespace-scoped part of ``OperatorService``.
Each call is admitted for the namespace named in the request body (and every namespace nested
in it) against that namespace's accepted client CA, held to the namespace's rate limits,
counted, and its bytes forwarded to the namespace's cell.
"""

from dataplane.gateway._limits import (
    DEFAULT_ACTIONS_PER_SECOND,
    DEFAULT_REQUESTS_PER_SECOND,
    CallerLimits,
    Limits,
)
from dataplane.gateway._metrics import NAMESPACE_LATENCY_BUCKETS
from dataplane.gateway._routes import (
    APPLIED_VERSION_HEADER,
    GATEWAY_ID_HEADER,
    GATEWAY_LATENCY_HEADER,
    GATEWAY_REJECTED_HEADER,
    GATEWAY_THROTTLED_HEADER,
    HttpRouteSource,
    Route,
    RouteDocument,
    RouteEntry,
    RouteSource,
    RouteTable,
    StaticRouteSource,
)
from dataplane.gateway._server import Gateway, gateway_serving
from dataplane.gateway._settings import GatewaySettings
from dataplane.gateway._tls import DEFAULT_DOMAIN, ServerNames

__all__ = [
    "APPLIED_VERSION_HEADER",
    "DEFAULT_ACTIONS_PER_SECOND",
    "DEFAULT_DOMAIN",
    "DEFAULT_REQUESTS_PER_SECOND",
    "GATEWAY_ID_HEADER",
    "GATEWAY_LATENCY_HEADER",
    "GATEWAY_REJECTED_HEADER",
    "GATEWAY_THROTTLED_HEADER",
    "NAMESPACE_LATENCY_BUCKETS",
    "CallerLimits",
    "Gateway",
    "GatewaySettings",
    "HttpRouteSource",
    "Limits",
    "Route",
    "RouteDocument",
    "RouteEntry",
    "RouteSource",
    "RouteTable",
    "ServerNames",
    "StaticRouteSource",
    "gateway_serving",
]
