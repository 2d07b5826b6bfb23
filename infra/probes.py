"""Readiness probes of a running Stratus from the outside, as an orchestrator asks them: the
gateway's gRPC health service and an API's ``/healthz``. Used by the tests and the benchmarks
that start roles by hand."""

from __future__ import annotations

import subprocess

import grpc
import httpx

# grpc.health.v1.HealthCheckResponse, serialized: status SERVING (1) / NOT_SERVING (2).
SERVING = b"\x08\x01"
NOT_SERVING = b"\x08\x02"


def _raw(message: bytes) -> bytes:
    return message


def gateway_health(port: int, ca_pem: bytes, host: str = "127.0.0.1") -> bytes | None:
    """The raw gRPC health answer of a gateway endpoint (None: no answer). The gateway's
    certificate names ``localhost``."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca_pem)
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(f"{host}:{port}", credentials, options=options) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=_raw,
            response_deserializer=_raw,
        )
        try:
            answer: bytes = check(b"", timeout=2)
        except grpc.RpcError:
            return None
    return answer


def api_alive(url: str, process: subprocess.Popen[bytes]) -> bool:
    """Whether the API ``process`` at ``url`` answers ``/healthz``; fails if it exited."""
    assert process.poll() is None, f"the API at {url} exited with {process.returncode}"
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False
