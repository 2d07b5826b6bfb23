"""The data-plane gateway: the mTLS gRPC ingress that SDK workers connect to.

It serves Temporal's ``WorkflowService``, admits each call for the namespace named in the
request body against that namespace's accepted client CA, and forwards the bytes to the
namespace's cell.
"""

from dataplane.gateway._routes import (
    HttpRouteSource,
    Route,
    RouteSource,
    RouteTable,
    StaticRouteSource,
)
from dataplane.gateway._server import Gateway

__all__ = [
    "Gateway",
    "HttpRouteSource",
    "Route",
    "RouteSource",
    "RouteTable",
    "StaticRouteSource",
]
