"""Export sinks cannot be turned against the operator's network (SSRF): endpoints resolving to
loopback, link-local, private, CGNAT, multicast, reserved or this host's own addresses are
refused when the sink is set (400 ``address-not-allowed``) and again on every connection the
exporter opens, where the socket goes only to the address that was checked (DNS rebinding);
the operator's allow-list lets chosen networks through; and a failing sink shows its tenant a
category, never the endpoint's answer."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from billing_support import export
from identity_support import assert_problem
from seaweed_server import LOOPBACK, SeaweedS3
from support import StratusUp, Tenant, http, new_tenant

from billing import EgressPolicy, EndpointNotAllowed, address_class, s3_client
from billing._egress import _host_addresses

NOW = dt.datetime(2026, 3, 10, 5, 3, tzinfo=dt.UTC)
LOOPBACK_ONLY = (ipaddress.ip_network("127.0.0.1/32"),)
SECRET = "leaked-" + uuid.uuid4().hex


def _resolving_to(*addresses: str) -> Any:
    """A resolver (the exporter's DNS seam) that answers every name with ``addresses``, and
    counts its calls: the connection resolves through it, then connects to what it checked."""

    def resolve(host: str, port: int) -> Sequence[str]:
        resolve.calls.append(host)  # type: ignore[attr-defined]
        return list(addresses)

    resolve.calls = []  # type: ignore[attr-defined]
    return resolve


def _body(endpoint_url: str, bucket: str = "exports-egress") -> dict[str, Any]:
    return {
        "bucket": bucket,
        "prefix": f"egress-{uuid.uuid4().hex[:8]}",
        "endpoint_url": endpoint_url,
        "access_key_id": "stratus-test",
        "secret_access_key": "stratus-test-secret",
        "export_from": str(NOW.date()),
    }


@pytest.fixture
def tenant(stratus: StratusUp) -> Iterator[Tenant]:
    """A tenant of the shared Stratus (whose API allows no network beyond the public ones);
    its sink is removed afterwards, so the worker's own export runs never try it."""
    tenant = new_tenant(stratus, f"Egress{uuid.uuid4().hex[:6]}")
    try:
        yield tenant
    finally:
        with http(stratus, tenant.api_key) as client:
            client.delete("/billing/export-sink")


@contextlib.contextmanager
def _listener() -> Iterator[tuple[int, list[object]]]:
    """A TCP listener on 127.0.0.1 that records every connection it accepts."""
    accepted: list[object] = []
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                connection, peer = server.accept()
                accepted.append(peer)
                connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join()
        server.close()


@contextlib.contextmanager
def _leaky_endpoint(status: int) -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP service that answers every request with ``status``, an S3-style error
    body and a header, all carrying SECRET (what an internal service's answer might hold)."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            requests.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{SECRET}</Code>'
                f"<Message>internal token {SECRET}</Message></Error>"
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("X-Internal-Token", SECRET)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_endpoints_on_forbidden_addresses_are_refused_when_the_sink_is_set(
    stratus: StratusUp, tenant: Tenant
) -> None:
    """Every class of address a sink must not reach, as a literal or as a name (localhost),
    is a 400 ``address-not-allowed`` on ``endpoint_url`` naming the class; nothing is stored."""
    refused = {
        "http://127.0.0.1:9000": "loopback",
        "http://127.0.0.2": "loopback",
        "http://[::1]:9000": "loopback",
        "http://localhost:9000": "loopback",
        "http://169.254.169.254/latest": "link-local",
        "http://[fe80::1]": "link-local",
        "http://10.1.2.3": "private",
        "http://172.16.0.9": "private",
        "https://192.168.1.10": "private",
        "http://[fd00::5]": "private",
        "http://100.64.0.1": "shared (CGNAT)",
        "http://0.0.0.0:9000": "unspecified",
        "http://[::]": "unspecified",
        "http://224.0.0.1": "multicast",
        "http://240.0.0.1": "private",  # 240/4 is in ipaddress's private list before reserved
        "http://[::ffff:127.0.0.1]:9000": "IPv4-in-IPv6 loopback",
        "http://[::ffff:169.254.169.254]": "IPv4-in-IPv6 link-local",
        "http://[64:ff9b::a00:1]": "IPv4-in-IPv6 private",
        "http://2130706433": "loopback",  # 127.0.0.1 as one decimal number
    }
    with http(stratus, tenant.api_key) as client:
        for endpoint_url, reason in refused.items():
            response = client.put("/billing/export-sink", json=_body(endpoint_url))
            assert_problem(response, 400, "address-not-allowed")
            problem = response.json()
            assert problem["field"] == "endpoint_url"
            assert f"may not reach ({reason} address)" in problem["detail"], endpoint_url
        assert_problem(client.get("/billing/export-sink"), 404, "not-found")


def test_malformed_endpoints_are_a_400_not_a_500(stratus: StratusUp, tenant: Tenant) -> None:
    """Schemes other than http(s), credentials in the URL, a broken IPv6 literal, a bad port,
    a query or fragment, and control characters are 400 ``invalid-field``."""
    with http(stratus, tenant.api_key) as client:
        for endpoint_url in (
            "http://[::1",
            "http://[not-an-address]/",
            "ftp://s3.example.test",
            "file:///etc/passwd",
            "gopher://s3.example.test:70/",
            "http://user:password@s3.example.test",
            "http://user@s3.example.test",
            "http://s3.example.test:99999",
            "http://s3.example.test:0",
            "http://s3.example.test:port",
            "http://s3.example.test/?x=1",
            "http://s3.example.test/#f",
            "http://s3.example.test/a b",
            "http://s3.example.test/\x01",
            "//s3.example.test",
            "http://",
        ):
            response = client.put("/billing/export-sink", json=_body(endpoint_url))
            assert_problem(response, 400, "invalid-field")
            assert response.json()["field"] == "endpoint_url", endpoint_url
        # NUL cannot even be stored in a JSON string the API accepts: a malformed body.
        response = client.put("/billing/export-sink", json=_body("http://s3.example.test/\x00"))
        assert_problem(response, 422, "malformed-request")


def test_a_name_rebound_to_loopback_after_it_was_set_is_refused_on_connect(
    stratus: StratusUp, tenant: Tenant
) -> None:
    """A name that did not resolve to a forbidden address when the sink was set, and does when
    the exporter connects (DNS rebinding), is refused at the connection: no socket reaches the
    loopback listener, and the sink says why."""
    with _listener() as (port, accepted):
        with http(stratus, tenant.api_key) as client:
            created = client.put(
                "/billing/export-sink", json=_body(f"http://rebound.example.test:{port}")
            )
            assert created.status_code == 200, created.text
        rebound = _resolving_to("127.0.0.1")
        report = asyncio.run(export(stratus, now=NOW, egress=EgressPolicy(resolver=rebound)))
        assert report.failed[tenant.account_id] == "endpoint address not allowed (loopback address)"
        assert set(rebound.calls) == {"rebound.example.test"}
        assert accepted == []
    with http(stratus, tenant.api_key) as client:
        sink = client.get("/billing/export-sink").json()
    assert sink["last_error"] == "endpoint address not allowed (loopback address)"
    assert sink["usage_exported_through"] is None


def test_the_connection_goes_to_the_address_that_was_checked(
    stratus: StratusUp, tenant: Tenant, seaweed_s3: SeaweedS3, bucket: str
) -> None:
    """The pinning is real: a name only the exporter's resolver knows reaches the allow-listed
    SeaweedFS and the hours land in the bucket (the system resolver could not have found it)."""
    port = int(seaweed_s3.endpoint_url.rsplit(":", 1)[1])
    body = _body(f"http://pinned.example.test:{port}", bucket=bucket)
    with http(stratus, tenant.api_key) as client:
        assert client.put("/billing/export-sink", json=body).status_code == 200
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("pinned.example.test", port)
    pinned = _resolving_to("127.0.0.1")
    egress = EgressPolicy(allowed_networks=LOOPBACK_ONLY, resolver=pinned)
    report = asyncio.run(export(stratus, now=NOW, egress=egress))
    assert tenant.account_id not in report.failed, report.failed
    assert len(report.usage_hours[tenant.account_id]) == 5
    s3 = s3_client(seaweed_s3.sink(bucket), egress=LOOPBACK)
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{body['prefix']}/usage/")
    assert len(listed.get("Contents", [])) == 5
    assert set(pinned.calls) == {"pinned.example.test"}


@pytest.mark.parametrize(
    ("status", "category"),
    [(403, "access denied (HTTP 403)"), (500, "endpoint server error (HTTP 500)")],
)
def test_last_error_is_a_category_never_the_endpoints_answer(
    stratus: StratusUp, tenant: Tenant, status: int, category: str
) -> None:
    """An allow-listed endpoint that answers with secrets in its body and headers: the sink's
    ``last_error`` (and the API answer) is the category alone."""
    with _leaky_endpoint(status) as (port, requests):
        with http(stratus, tenant.api_key) as client:
            body = _body(f"http://internal.example.test:{port}")
            assert client.put("/billing/export-sink", json=body).status_code == 200
        egress = EgressPolicy(allowed_networks=LOOPBACK_ONLY, resolver=_resolving_to("127.0.0.1"))
        report = asyncio.run(export(stratus, now=NOW, egress=egress))
        assert requests, "the endpoint was reached and answered"
    assert report.failed[tenant.account_id] == category
    with http(stratus, tenant.api_key) as client:
        answer = client.get("/billing/export-sink")
    assert answer.json()["last_error"] == category
    assert SECRET not in answer.text


def test_every_answer_of_a_name_is_checked_and_the_allow_list_lets_networks_through() -> None:
    """One forbidden address among a name's answers refuses the name (a client would try the
    next address); an allow-listed network passes even on loopback; public addresses pass;
    every address of this host's own interfaces is refused."""
    mixed = EgressPolicy(resolver=_resolving_to("8.8.8.8", "2606:4700::1111", "127.0.0.1"))
    with pytest.raises(EndpointNotAllowed, match="loopback"):
        mixed.allowed_addresses("mixed.example.test", 443)
    public_then_private = EgressPolicy(resolver=_resolving_to("8.8.8.8", "10.0.0.1"))
    with pytest.raises(EndpointNotAllowed, match="private"):
        public_then_private.allowed_addresses("mixed.example.test", 443)
    public = EgressPolicy(resolver=_resolving_to("8.8.8.8", "2606:4700::1111"))
    assert [str(a) for a in public.allowed_addresses("s3.example.test", 443)] == [
        "8.8.8.8",
        "2606:4700::1111",
    ]
    allowed = EgressPolicy(allowed_networks=(ipaddress.ip_network("10.20.0.0/16"),))
    assert allowed.refusal(ipaddress.ip_address("10.20.3.4")) is None
    assert allowed.refusal(ipaddress.ip_address("::ffff:10.20.3.4")) is None
    assert allowed.refusal(ipaddress.ip_address("10.21.0.1")) == "private address"
    assert address_class(ipaddress.ip_address("8.8.8.8")) is None
    for address in _host_addresses():
        assert EgressPolicy().refusal(address) is not None, address
