"""The cell probe's failure categories against real sockets: nothing listening, a listener that
never answers, and a TLS client against a plaintext listener."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from auth import generate_ca, generate_leaf
from dataplane.cells import CellTls, probe


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """Accepts connections (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


async def test_nothing_listening_is_connection_refused() -> None:
    result = await probe(_closed_port(), None, timeout=2.0)
    assert not result.reachable
    assert result.category == "unreachable: connection refused", result


async def test_a_frontend_that_never_answers_is_a_timeout(silent_listener: str) -> None:
    result = await probe(silent_listener, None, timeout=0.5)
    assert not result.reachable
    assert result.category == "timeout", result


async def test_tls_to_a_silent_listener_is_a_timeout_not_a_pass(silent_listener: str) -> None:
    ca = generate_ca("probe CA")
    client = generate_leaf(ca, "stratus")
    tls = CellTls(ca.cert_pem.decode(), client.cert_pem.decode(), client.key_pem.decode(), "x")
    result = await probe(silent_listener, tls, timeout=0.5)
    assert not result.reachable
    assert result.category == "timeout", result
