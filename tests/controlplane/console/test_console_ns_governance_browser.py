"""One real-browser journey over namespace governance: the settings page with delete protection
on, and the workflow page decoding an encoded input through the namespace's codec server (a real
HTTP codec server on loopback, reached by the browser under the page's CSP) — no CSP report,
no serious axe violation, no sideways scroll at 390 px."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from console_support import (
    assert_no_sideways_scroll,
    chromium,
    console_page,
    screenshot,
    serious_violations,
    sign_in_by_link,
)
from support import StratusUp, Tenant, new_tenant, tls_for
from temporalio.client import Client

from controlplane.namespaces.schemas import CodecServerSpec

pytestmark = pytest.mark.sqlite_only


class _Codec(BaseHTTPRequestHandler):
    """Temporal's codec protocol: POST /codec/decode {"payloads": [...]}; answers with each
    payload's bytes wrapped as JSON ({"decoded": text}), and CORS for the console's origin."""

    requests: ClassVar[list[str]] = []

    def _cors(self) -> None:
        self.send_header("Access-Control-Allow-Origin", self.headers.get("Origin", "*"))
        self.send_header("Access-Control-Allow-Methods", "POST")
        self.send_header("Access-Control-Allow-Headers", "content-type, x-namespace")

    def do_OPTIONS(self) -> None:
        self.send_response(204)
        self._cors()
        self.end_headers()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Codec.requests.append(f"{self.path} {self.headers.get('X-Namespace')}")
        decoded = [
            {
                "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
                "data": base64.b64encode(
                    json.dumps({"decoded": base64.b64decode(p["data"]).decode()}).encode()
                ).decode(),
            }
            for p in body["payloads"]
        ]
        answer = json.dumps({"payloads": decoded}).encode()
        self.send_response(200)
        self._cors()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def codec_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Codec)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/codec"
    finally:
        server.shutdown()
        server.server_close()


async def _start_with_bytes(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> str:
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, tenant.client_cert, namespace_id),
    )
    handle = await client.start_workflow(
        "Anything", b"order-42", id="sealed-order", task_queue="nobody-polls"
    )
    assert handle.result_run_id is not None
    return handle.result_run_id


def test_protection_setting_and_codec_decoding_in_a_browser(
    stratus: StratusUp, tmp_path: Path, codec_server: str
) -> None:
    tenant = new_tenant(stratus, "Sealer")
    with tenant.client(stratus) as client:
        created = client.create_namespace(
            "sealed",
            tenant.ca.cert_pem.decode(),
            delete_protection=True,
            codec_server=CodecServerSpec(endpoint=codec_server),
        )
        operation = client.wait_for_operation(created.async_operation.id, timeout=120)
        assert operation.state == "FULFILLED", operation.failure_reason
    namespace_id = created.namespace.id
    run_id = asyncio.run(_start_with_bytes(stratus, tenant, namespace_id))
    detail_path = f"/namespaces/{namespace_id}"
    workflow_path = f"{detail_path}/workflows/sealed-order/{run_id}"

    with chromium() as browser:
        page, csp_reports = console_page(browser, height=1400)
        sign_in_by_link(page, stratus, tenant.api_key, "**/namespaces")

        page.goto(stratus.api_url + detail_path)
        assert page.get_by_label("Delete protection").is_checked()
        assert page.get_by_text("Delete protection is on").count() == 1
        screenshot(page, tmp_path, "namespace-delete-protection", full_page=True)
        assert serious_violations(page) == []

        page.goto(stratus.api_url + workflow_path)
        decoded = page.get_by_label("Input 1 (decoded by the codec server)")
        assert decoded.is_hidden()
        page.get_by_role("button", name="Decode with codec server").click()
        page.get_by_text("Decoded 1 payload(s).").wait_for()
        assert decoded.is_visible()
        assert json.loads(decoded.inner_text()) == {"decoded": "order-42"}
        assert _Codec.requests == [f"/codec/decode {namespace_id}"]
        screenshot(page, tmp_path, "workflow-codec-decoded")
        assert serious_violations(page) == []

        page.set_viewport_size({"width": 390, "height": 844})
        for path in (detail_path, workflow_path):
            page.goto(stratus.api_url + path)
            assert_no_sideways_scroll(page, path)
    assert csp_reports == []
