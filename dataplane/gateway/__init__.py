"""The data-plane gateway: the mTLS gRPC ingress that SDK workers connect to.

It serves Temporal's ``WorkflowService`` and the namespace-scoped part of ``OperatorService``.
Each call is admitted for the namespace named in the request body (and every namespace nested
in it) against that namespace's accepted client CA, held to the namespace's rate limits,
counted, and its bytes forwarded to the namespace's cell.
"""

from dataplane.gateway._limits import CallerLimits, Limits
from dataplane.gateway._routes import (
    HttpRouteSource,
    Route,
    RouteSource,
    RouteTable,
    StaticRouteSource,
)
from dataplane.gateway._server import Gateway
from dataplane.gateway._settings import GatewaySettings
from dataplane.gateway._tls import DEFAULT_DOMAIN, ServerNames

__all__ = [
    "DEFAULT_DOMAIN",
    "CallerLimits",
    "Gateway",
    "GatewaySettings",
    "HttpRouteSource",
    "Limits",
    "Route",
    "RouteSource",
    "RouteTable",
    "ServerNames",
    "StaticRouteSource",
]
