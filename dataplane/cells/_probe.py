"""Probing a cell's frontend: ``GetSystemInfo`` over the cell's TLS (or plaintext for a local
cell), with the failure put in a category an operator can act on.

Registration refuses a cell whose probe fails; the health check records the outcome of each
probe on the cell (and the gateway stops sending traffic to an unhealthy one).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from dataplane.cells._tls import CellTls, grpc_channel

_GET_SYSTEM_INFO = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo"
DEFAULT_PROBE_TIMEOUT = 5.0

# Reason categories, most specific first: (category, fragments of gRPC's error text).
_CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "tls: server name mismatch",
        (
            "peer name",
            "hostname verification",
            "hostname mismatch",
            "subject alternative",
        ),
    ),
    (
        "tls: unknown certificate authority",
        ("certificate_verify_failed", "unable to get local issuer", "self signed certificate"),
    ),
    (
        "tls: client certificate refused",
        ("sslv3_alert_bad_certificate", "alert certificate required", "tlsv13_alert_certificate"),
    ),
    ("tls: handshake failed", ("ssl", "handshake", "tsi_")),
    ("unreachable: connection refused", ("connection refused", "connect failed")),
    ("unreachable: name resolution failed", ("dns resolution", "name resolution", "resolve")),
)


@dataclass(frozen=True)
class ProbeResult:
    """``reachable`` with the server's version, or not with a reason ("<category>: <detail>"
    or "timeout")."""

    reachable: bool
    server_version: str = ""
    reason: str = ""

    @property
    def category(self) -> str:
        return self.reason.split(" (", 1)[0]


def classify(detail: str) -> str:
    """The category of a failed connection's error text."""
    lowered = detail.lower()
    for category, fragments in _CATEGORIES:
        if any(fragment in lowered for fragment in fragments):
            return category
    return "unreachable"


async def probe(
    address: str, tls: CellTls | None, *, timeout: float = DEFAULT_PROBE_TIMEOUT
) -> ProbeResult:
    """Call ``GetSystemInfo`` on the frontend at ``address`` within ``timeout`` seconds."""
    import grpc
    import grpc.aio
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest, GetSystemInfoResponse

    try:
        channel = grpc_channel(address, tls)
    except (ValueError, TypeError) as error:  # a target gRPC cannot parse
        return ProbeResult(False, reason=f"unreachable: bad address ({error})")
    try:
        call = channel.unary_unary(
            _GET_SYSTEM_INFO,
            request_serializer=GetSystemInfoRequest.SerializeToString,
            response_deserializer=GetSystemInfoResponse.FromString,
        )
        try:
            response = await asyncio.wait_for(
                call(GetSystemInfoRequest(), timeout=timeout, wait_for_ready=False),
                timeout + 1.0,
            )
        except grpc.aio.AioRpcError as error:
            detail = error.details() or error.code().name
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return ProbeResult(False, reason=f"timeout ({detail})")
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                # The frontend answered: reachable, but not a Temporal frontend that serves us.
                return ProbeResult(False, reason=f"refused: {error.code().name} ({detail})")
            category = classify(detail)
            if tls is not None and category == "unreachable" and "socket closed" in detail.lower():
                # TLS 1.3: the client's handshake is done before the frontend checks the client
                # certificate; a refused one shows as the frontend closing the connection.
                category = "tls: closed by the frontend, client certificate refused?"
            return ProbeResult(False, reason=f"{category} ({detail})")
        except TimeoutError:
            return ProbeResult(False, reason="timeout")
        return ProbeResult(True, server_version=response.server_version)
    finally:
        await channel.close(None)
