"""The catalogue of methods the gateway serves, built from the request messages of
Temporal's WorkflowService and OperatorService and classified by ``_policy``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType, ModuleType
from typing import Protocol, cast

from google.protobuf.message import Message
from temporalio.api.operatorservice.v1 import request_response_pb2 as operator_messages
from temporalio.api.workflowservice.v1 import request_response_pb2 as workflow_messages

from dataplane.gateway._nested import may_nest
from dataplane.gateway._policy import (
    OPERATOR_SERVICE,
    WORKFLOW_SERVICE,
    Handling,
    MethodPolicy,
    Permission,
    policy_of,
)

SERVICES: Mapping[str, ModuleType] = MappingProxyType(
    {WORKFLOW_SERVICE: workflow_messages, OPERATOR_SERVICE: operator_messages}
)


class NamespacedRequest(Protocol):
    """What the gateway reads from a decoded request: its top-level namespace."""

    @property
    def namespace(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Method:
    """One unary method the gateway knows."""

    service: str
    name: str
    path: str
    policy: MethodPolicy
    parse: Callable[[bytes], NamespacedRequest]
    # Precomputed span attributes, so the hot path does not rebuild them.
    span_attributes: Mapping[str, str]
    # Whether the request type can carry namespaces or task tokens below its top level.
    may_nest: bool = False

    @property
    def handling(self) -> Handling:
        return self.policy.handling

    @property
    def permission(self) -> Permission | None:
        return self.policy.permission

    def message(self, request: bytes) -> Message:
        return cast(Message, self.parse(request))


def request_names(module: ModuleType) -> list[str]:
    """Method names of a service, from its ``<Method>Request`` messages.

    ``service_pb2`` would name the methods too, but importing it needs
    googleapis-common-protos at run time; tests check both agree.
    """
    return [
        name.removesuffix("Request")
        for name in module.DESCRIPTOR.message_types_by_name
        if name.endswith("Request")
    ]


def _catalogue() -> Mapping[str, Method]:
    methods: dict[str, Method] = {}
    for service, module in SERVICES.items():
        for name in request_names(module):
            request_type = getattr(module, f"{name}Request")
            path = f"/{service}/{name}"
            methods[path] = Method(
                service=service,
                name=name,
                path=path,
                policy=policy_of(service, name),
                parse=cast(Callable[[bytes], NamespacedRequest], request_type.FromString),
                span_attributes=MappingProxyType(
                    {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
                ),
                may_nest=may_nest(request_type.DESCRIPTOR),
            )
    return MappingProxyType(methods)


METHODS: Mapping[str, Method] = _catalogue()
