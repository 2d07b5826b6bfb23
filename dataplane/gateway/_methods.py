"""The catalogue of WorkflowService methods the gateway serves and how each one is routed."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol, cast

from temporalio.api.workflowservice.v1 import request_response_pb2

from dataplane.gateway._nested import may_nest

SERVICE_NAME = "temporal.api.workflowservice.v1.WorkflowService"


class Routing(enum.Enum):
    """How the gateway decides which cell (if any) receives a method."""

    # The request body names the namespace; route to that namespace's cell.
    NAMESPACE = "namespace"
    # Cluster-level reads without a namespace; any cell the caller is admitted to answers.
    CLUSTER = "cluster"
    # Namespace lifecycle belongs to the control plane, never to a tenant's SDK.
    REFUSED = "refused"


# Namespace lifecycle goes through the Stratus control plane. `DeleteNamespace` lives on
# OperatorService in current APIs (refused as unimplemented there); listed in case it moves.
_MANAGEMENT = frozenset(
    {
        "RegisterNamespace",
        "UpdateNamespace",
        "DeprecateNamespace",
        "ListNamespaces",
        "DeleteNamespace",
    }
)
_CLUSTER = frozenset({"GetSystemInfo", "GetClusterInfo", "GetSearchAttributes"})


class NamespacedRequest(Protocol):
    """What the gateway reads from a decoded request: only its top-level namespace."""

    @property
    def namespace(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Method:
    """One unary WorkflowService method."""

    name: str
    path: str
    routing: Routing
    parse: Callable[[bytes], NamespacedRequest]
    # Precomputed span attributes, so the hot path does not rebuild them.
    span_attributes: Mapping[str, str]
    # Whether the request type can carry namespaces or task tokens below its top level.
    may_nest: bool = False


def _catalogue() -> Mapping[str, Method]:
    # `service_pb2` would name the methods too, but importing it needs googleapis-common-protos;
    # every method `X` has exactly one `XRequest` in request_response_pb2 (checked in tests).
    methods: dict[str, Method] = {}
    for message_name in request_response_pb2.DESCRIPTOR.message_types_by_name:
        if not message_name.endswith("Request"):
            continue
        name = message_name.removesuffix("Request")
        request_type = getattr(request_response_pb2, message_name)
        if name in _MANAGEMENT:
            routing = Routing.REFUSED
        elif name in _CLUSTER:
            routing = Routing.CLUSTER
        else:
            routing = Routing.NAMESPACE
        path = f"/{SERVICE_NAME}/{name}"
        methods[path] = Method(
            name=name,
            path=path,
            routing=routing,
            parse=cast(Callable[[bytes], NamespacedRequest], request_type.FromString),
            span_attributes=MappingProxyType(
                {"rpc.system": "grpc", "rpc.service": SERVICE_NAME, "rpc.method": name}
            ),
            may_nest=may_nest(request_type.DESCRIPTOR),
        )
    return MappingProxyType(methods)


METHODS: Mapping[str, Method] = _catalogue()
