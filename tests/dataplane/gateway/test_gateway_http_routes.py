"""HttpRouteSource reads the control plane's route document with conditional requests."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import grpc
import pytest
from otlp_receiver import OtlpReceiver, ReceivedSpan
from support import free_port
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client

from auth import AuthMethod, CertificateFilter
from dataplane.cells import CellTls
from dataplane.gateway import (
    DEFAULT_ACTIONS_PER_SECOND,
    DEFAULT_REQUESTS_PER_SECOND,
    Gateway,
    HttpRouteSource,
    Limits,
    RouteDocument,
    RouteEntry,
    ServerNames,
)

if TYPE_CHECKING:
    from conftest import Cells, Pki

    from infra.cell_frontend import CellFrontend

API_KEY = "stratus-gateway-test-key"
REPO_ROOT = Path(__file__).resolve().parents[3]


class ControlPlane(BaseHTTPRequestHandler):
    """Serves ``/api/v1/internal/gateway-routes`` like the control plane, from class state."""

    document: ClassVar[dict[str, object]] = {}
    fail: ClassVar[bool] = False
    seen: ClassVar[list[tuple[str | None, str | None]]] = []

    def do_GET(self) -> None:
        type(self).seen.append(
            (self.headers.get("Authorization"), self.headers.get("If-None-Match"))
        )
        if self.path != "/api/v1/internal/gateway-routes":
            self.send_response(404)
        elif self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self.send_response(401)
        elif type(self).fail:
            self.send_response(503)
        elif self.headers.get("If-None-Match") == f'"{self.document["version"]}"':
            self.send_response(304)
        else:
            body = json.dumps(self.document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("ETag", f'"{self.document["version"]}"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def control_plane() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ControlPlane)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_fetch_follows_versions_and_survives_outages(control_plane: str, pki: Pki) -> None:
    """200 gives a table, 304 gives None, errors keep the last table (None), invalid CAs drop
    only their namespace."""
    ControlPlane.seen.clear()
    ControlPlane.fail = False
    ControlPlane.document = {
        "version": 7,
        "routes": [
            {
                "namespace_id": "orders.acct1",
                "cell_address": "127.0.0.1:7301",
                "accepted_client_ca": pki.ca_a.cert_pem.decode(),
            },
            {
                "namespace_id": "broken.acct1",
                "cell_address": "127.0.0.1:7301",
                "accepted_client_ca": "not a certificate",
            },
        ],
    }
    source = HttpRouteSource(control_plane, API_KEY, timeout=2.0)
    try:
        table = await source.fetch()
        assert table is not None
        assert table.version == 7
        assert list(table.routes) == ["orders.acct1"]
        assert table.routes["orders.acct1"].cell_address == "127.0.0.1:7301"
        assert table.routes["orders.acct1"].accepted_client_ca.pem == pki.ca_a.cert_pem.decode()

        assert await source.fetch() is None  # 304: unchanged

        ControlPlane.fail = True
        assert await source.fetch() is None  # outage: keep the last table

        ControlPlane.fail = False
        ControlPlane.document = {"version": 8, "routes": []}
        table = await source.fetch()
        assert table is not None
        assert (table.version, dict(table.routes)) == (8, {})
    finally:
        await source.aclose()
    assert ControlPlane.seen == [
        (f"Bearer {API_KEY}", None),
        (f"Bearer {API_KEY}", '"7"'),
        (f"Bearer {API_KEY}", '"7"'),
        (f"Bearer {API_KEY}", '"7"'),
    ]


async def test_fetch_reads_certificate_filters_and_drops_invalid_ones(
    control_plane: str, pki: Pki
) -> None:
    """Routes carry their parsed certificate filters (absent means none); a namespace whose
    filters do not parse is dropped, like one with an invalid bundle, and others stay."""
    ControlPlane.fail = False
    ca = pki.ca_a.cert_pem.decode()
    ControlPlane.document = {
        "version": 3,
        "routes": [
            {
                "namespace_id": "filtered.acct1",
                "cell_address": "127.0.0.1:7301",
                "accepted_client_ca": ca,
                "certificate_filters": [
                    {"common_name": "worker-*"},
                    {"organization": "Acme", "subject_alternative_name": "*.acme.com"},
                ],
            },
            {
                "namespace_id": "open.acct1",
                "cell_address": "127.0.0.1:7301",
                "accepted_client_ca": ca,
            },
            {
                "namespace_id": "bad-filter.acct1",
                "cell_address": "127.0.0.1:7301",
                "accepted_client_ca": ca,
                "certificate_filters": [{"common_name": "*a*"}],
            },
        ],
    }
    source = HttpRouteSource(control_plane, API_KEY, timeout=2.0)
    try:
        table = await source.fetch()
    finally:
        await source.aclose()
    assert table is not None
    assert sorted(table.routes) == ["filtered.acct1", "open.acct1"]
    # Reported back as not served, so the control plane never calls it ACTIVE.
    assert list(table.dropped) == ["bad-filter.acct1"]
    assert table.dropped["bad-filter.acct1"].startswith("its certificate filters are refused")
    assert table.routes["filtered.acct1"].certificate_filters == (
        CertificateFilter(common_name="worker-*"),
        CertificateFilter(organization="Acme", subject_alternative_name="*.acme.com"),
    )
    assert table.routes["open.acct1"].certificate_filters == ()


async def test_fetch_resolves_each_route_to_its_cell(control_plane: str, pki: Pki) -> None:
    """A route naming a cell takes the cell's address and TLS from the document's ``cells``; a
    cell reported unhealthy, or not described (or described badly), marks its namespaces
    unavailable with the reason; a route without a cell id keeps plaintext to its address (a
    control plane from before cells were published)."""
    ControlPlane.fail = False
    ca = pki.ca_a.cert_pem.decode()
    tls = {"ca_pem": "CA", "cert_pem": "CERT", "key_pem": "KEY", "server_name": "fe.cell.test"}

    def entry(namespace: str, cell_id: str | None) -> dict[str, object]:
        fields: dict[str, object] = {
            "namespace_id": namespace,
            "cell_address": "127.0.0.1:7301",
            "accepted_client_ca": ca,
        }
        if cell_id is not None:
            fields["cell_id"] = cell_id
        return fields

    ControlPlane.document = {
        "version": 4,
        "routes": [
            entry("tls.acct1", "ext-1"),
            entry("down.acct1", "ext-2"),
            entry("lost.acct1", "ext-9"),
            entry("broken.acct1", "ext-3"),
            entry("legacy.acct1", None),
        ],
        "cells": [
            {"cell_id": "ext-1", "address": "10.0.0.1:7233", "tls": tls},
            {"cell_id": "ext-2", "address": "10.0.0.2:7233", "healthy": False},
            {"cell_id": "ext-3", "address": "10.0.0.3:7233", "tls": {"ca_pem": "CA"}},
        ],
    }
    source = HttpRouteSource(control_plane, API_KEY, timeout=2.0)
    try:
        table = await source.fetch()
    finally:
        await source.aclose()
    assert table is not None
    # Unavailable is not dropped: the namespace is served, and answers UNAVAILABLE.
    assert dict(table.dropped) == {}
    routes = table.routes
    assert (routes["tls.acct1"].cell_id, routes["tls.acct1"].cell_address) == (
        "ext-1",
        "10.0.0.1:7233",
    )
    assert routes["tls.acct1"].cell_tls == CellTls("CA", "CERT", "KEY", "fe.cell.test")
    assert routes["tls.acct1"].cell_unavailable == ""
    assert routes["down.acct1"].cell_address == "10.0.0.2:7233"
    assert routes["down.acct1"].cell_tls is None
    assert routes["down.acct1"].cell_unavailable == "the control plane reports the cell unhealthy"
    for lost in ("lost.acct1", "broken.acct1"):
        assert routes[lost].cell_unavailable == "the route document does not describe the cell"
    legacy = routes["legacy.acct1"]
    assert (legacy.cell_id, legacy.cell_address, legacy.cell_tls, legacy.cell_unavailable) == (
        "",
        "127.0.0.1:7301",
        None,
        "",
    )


async def test_fetch_reads_the_document_the_api_serialises_and_drops_malformed_entries(
    control_plane: str, pki: Pki
) -> None:
    """The control plane's own model (``RouteDocument``) is what the gateway reads: every field
    arrives as sent, omitted ones take the shared defaults, and an entry that does not fit the
    model (a missing address, an unknown auth method, a zero limit, not an object) drops only
    itself while the rest of the table applies."""
    ca = pki.ca_a.cert_pem.decode()
    published = RouteDocument(
        version=4,
        routes=[
            RouteEntry(
                namespace_id="keyed.acct1",
                cell_address="127.0.0.1:7301",
                accepted_client_ca=ca,
                cell_namespace_id="6f1c0c7e-0000-4000-8000-000000000001",
                certificate_filters=[{"common_name": "worker-*"}],
                auth_method=AuthMethod.MTLS_OR_API_KEY,
                requests_per_second=7,
                actions_per_second=3,
            )
        ],
    ).model_dump(mode="json")
    malformed: list[object] = [
        {"namespace_id": "no-address.acct1", "accepted_client_ca": ca},
        {
            "namespace_id": "odd-auth.acct1",
            "cell_address": "127.0.0.1:7301",
            "accepted_client_ca": ca,
            "auth_method": "password",
        },
        {
            "namespace_id": "no-limit.acct1",
            "cell_address": "127.0.0.1:7301",
            "accepted_client_ca": ca,
            "requests_per_second": 0,
        },
        "not an object",
    ]
    minimal = {"namespace_id": "minimal.acct1", "cell_address": "127.0.0.1:7301"}
    ControlPlane.fail = False
    ControlPlane.document = {
        **published,
        "routes": [*published["routes"], *malformed, {**minimal, "accepted_client_ca": ca}],
    }
    source = HttpRouteSource(control_plane, API_KEY, timeout=2.0)
    try:
        table = await source.fetch()
    finally:
        await source.aclose()
    assert table is not None
    assert (table.version, sorted(table.routes)) == (4, ["keyed.acct1", "minimal.acct1"])
    # Every named entry that was dropped is reported back as not served.
    assert dict(table.dropped) == {
        name: "its route entry is malformed"
        for name in ("no-address.acct1", "odd-auth.acct1", "no-limit.acct1")
    }
    keyed = table.routes["keyed.acct1"]
    assert keyed.auth_method is AuthMethod.MTLS_OR_API_KEY
    assert keyed.limits == Limits(requests_per_second=7, actions_per_second=3)
    assert keyed.cell_namespace_id == "6f1c0c7e-0000-4000-8000-000000000001"
    assert keyed.certificate_filters == (CertificateFilter(common_name="worker-*"),)
    minimal_route = table.routes["minimal.acct1"]
    assert minimal_route.auth_method is AuthMethod.MTLS
    assert minimal_route.limits == Limits(
        requests_per_second=DEFAULT_REQUESTS_PER_SECOND,
        actions_per_second=DEFAULT_ACTIONS_PER_SECOND,
    )
    assert (minimal_route.cell_namespace_id, minimal_route.certificate_filters) == ("", ())


async def test_gateway_follows_the_documents_cells_to_an_mtls_cell(
    control_plane: str, pki: Pki, cells: Cells, cell_frontend: CellFrontend
) -> None:
    """A document placing namespace A on a registered cell behind an mTLS frontend: the gateway
    reaches it with the cell's TLS from ``cells``; once the document reports the cell unhealthy,
    the namespace answers UNAVAILABLE with the tenant message."""
    tls = cell_frontend.tls()
    cell = {
        "cell_id": "cell-ext-1",
        "address": cell_frontend.address,
        "tls": {
            "ca_pem": tls.ca_pem,
            "cert_pem": tls.cert_pem,
            "key_pem": tls.key_pem,
            "server_name": tls.server_name,
        },
    }
    entry = {
        "namespace_id": cells.namespace_a,
        # What an older gateway would use; this one follows the cell.
        "cell_address": "127.0.0.1:1",
        "accepted_client_ca": pki.ca_a.cert_pem.decode(),
        "cell_id": "cell-ext-1",
    }
    ControlPlane.fail = False
    ControlPlane.document = {"version": 1, "routes": [entry], "cells": [cell]}
    source = HttpRouteSource(control_plane, API_KEY, timeout=2.0)
    gateway = Gateway(
        "127.0.0.1",
        0,
        server_cert_pem=pki.gateway_server.cert_pem,
        server_key_pem=pki.gateway_server.key_pem,
        route_source=source,
        issuer=pki.gateway_ca,
    )
    await gateway.start()
    try:
        client = await Client.connect(
            f"127.0.0.1:{gateway.bound_port}",
            namespace=cells.namespace_a,
            tls=pki.tls(pki.client_a),
        )
        described = await client.workflow_service.describe_namespace(
            wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a)
        )
        assert described.namespace_info.name == cells.namespace_a

        ControlPlane.document = {
            "version": 2,
            "routes": [entry],
            "cells": [{**cell, "healthy": False}],
        }
        await gateway.refresh()
        credentials = pki.channel_credentials(pki.client_a)
        options = [
            ("grpc.ssl_target_name_override", ServerNames().for_namespace(cells.namespace_a))
        ]
        async with grpc.aio.secure_channel(
            f"127.0.0.1:{gateway.bound_port}", credentials, options=options
        ) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await channel.unary_unary(
                    "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"
                )(
                    wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString(),
                    timeout=10,
                )
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert refused.value.details() == (
            f"namespace {cells.namespace_a} is temporarily unavailable; retry shortly"
        )
    finally:
        await gateway.stop(0)
        await source.aclose()


async def test_gateway_process_serves_routes_from_the_control_plane(
    control_plane: str, pki: Pki, cells: Cells, tmp_path: Path
) -> None:
    """``python -m dataplane.gateway`` follows the API's routes and stops cleanly on SIGTERM."""
    ControlPlane.fail = False
    ControlPlane.document = {
        "version": 1,
        "routes": [
            {
                "namespace_id": cells.namespace_a,
                "cell_address": cells.address_a,
                "accepted_client_ca": pki.ca_a.cert_pem.decode(),
            }
        ],
    }
    process, port = await start_gateway(control_plane, pki, tmp_path)
    try:
        client = await connect_when_listening(port, pki, cells.namespace_a)
        described = await client.workflow_service.describe_namespace(
            wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a)
        )
        assert described.namespace_info.name == cells.namespace_a
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def start_gateway(
    control_plane: str, pki: Pki, tmp_path: Path, extra_env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, int]:
    """``python -m dataplane.gateway`` following ``control_plane``; its output goes to
    ``tmp_path / "gateway.log"``."""
    files = {
        "STRATUS_GATEWAY_CERT": pki.gateway_server.cert_pem,
        "STRATUS_GATEWAY_KEY": pki.gateway_server.key_pem,
        "STRATUS_GATEWAY_CA": pki.gateway_ca.cert_pem,
        "STRATUS_GATEWAY_CA_KEY": pki.gateway_ca.key_pem,
    }
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    for name, content in files.items():
        path = tmp_path / name.lower()
        path.write_bytes(content)
        env[name] = str(path)
    port = free_port()
    env |= {
        "STRATUS_GATEWAY_HOST": "127.0.0.1",
        "STRATUS_GATEWAY_PORT": str(port),
        "STRATUS_API_URL": control_plane,
        "STRATUS_GATEWAY_API_KEY": API_KEY,
        **(extra_env or {}),
    }
    with open(tmp_path / "gateway.log", "ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "dataplane.gateway",
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    return process, port


async def test_gateway_exports_spans_and_metrics_over_otlp_and_logs_json(
    control_plane: str, pki: Pki, cells: Cells, tmp_path: Path
) -> None:
    """With STRATUS_OTEL_EXPORTER=otlp (the variable every role reads) the gateway's call spans
    (rpc method, namespace, status) and its call counters reach the collector as service
    stratus-gateway; with STRATUS_LOG_FORMAT=json it logs JSON lines."""
    ControlPlane.fail = False
    ControlPlane.document = {
        "version": 1,
        "routes": [
            {
                "namespace_id": cells.namespace_a,
                "cell_address": cells.address_a,
                "accepted_client_ca": pki.ca_a.cert_pem.decode(),
            }
        ],
    }
    receiver = OtlpReceiver()
    receiver.start()
    process, port = await start_gateway(
        control_plane,
        pki,
        tmp_path,
        {
            "STRATUS_OTEL_EXPORTER": "otlp",
            "STRATUS_OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "STRATUS_LOG_FORMAT": "json",
        },
    )
    try:
        client = await connect_when_listening(port, pki, cells.namespace_a)
        await client.workflow_service.describe_namespace(
            wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a)
        )

        def describe_span(r: OtlpReceiver) -> ReceivedSpan | None:
            return next((s for s in r.spans if s.name == "DescribeNamespace"), None)

        span = await asyncio.to_thread(receiver.wait_for, describe_span)
        assert (span.service, span.scope) == ("stratus-gateway", "stratus.gateway")
        assert span.attributes["rpc.method"] == "DescribeNamespace"
        assert span.attributes["temporal.namespace"] == cells.namespace_a
        assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.OK.value[0]

        def calls(r: OtlpReceiver) -> list[dict[str, object]]:
            return [
                point
                for m in r.metrics
                if m.service == "stratus-gateway" and m.name == "stratus.gateway.requests"
                for point in m.points
                if point.get("rpc.method") == "DescribeNamespace"
            ]

        (point, *_) = await asyncio.to_thread(receiver.wait_for, calls)
        assert point["temporal.namespace"] == cells.namespace_a
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        receiver.stop()
    lines = (tmp_path / "gateway.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines if not line.startswith("effective settings")]
    assert any(entry["message"] == "gateway stopping" for entry in entries), lines
    assert all({"timestamp", "level", "logger", "message"} <= entry.keys() for entry in entries)


async def connect_when_listening(port: int, pki: Pki, namespace: str) -> Client:
    deadline = time.monotonic() + 15
    while True:
        try:
            return await Client.connect(
                f"127.0.0.1:{port}", namespace=namespace, tls=pki.tls(pki.client_a, namespace)
            )
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
