"""Whether a Temporal cluster's frontend answers: the standard gRPC health check of its
WorkflowService (what ``/readyz`` asks the system cell)."""

from __future__ import annotations

import grpc
import grpc.aio

from dataplane.cells import CellTls, grpc_channel

_HEALTH_CHECK = "/grpc.health.v1.Health/Check"
_WORKFLOW_SERVICE = b"temporal.api.workflowservice.v1.WorkflowService"
# grpc.health.v1.HealthCheckRequest{service} and HealthCheckResponse{status: SERVING}, encoded
# by hand: one request and one constant answer do not need grpcio-health-checking.
_REQUEST = b"\x0a" + bytes([len(_WORKFLOW_SERVICE)]) + _WORKFLOW_SERVICE
_SERVING = b"\x08\x01"


async def temporal_serving(
    address: str, *, tls: CellTls | None = None, timeout: float = 2.0
) -> bool:
    """True when the Temporal frontend at ``address`` (plaintext gRPC, or TLS with ``tls``)
    reports SERVING within ``timeout`` seconds."""
    async with grpc_channel(address, tls) as channel:
        check = channel.unary_unary(_HEALTH_CHECK, None, None)
        try:
            answer = await check(_REQUEST, timeout=timeout)
        except grpc.aio.AioRpcError:
            return False
    return bool(answer == _SERVING)
