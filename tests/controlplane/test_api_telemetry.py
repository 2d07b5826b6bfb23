"""The API emits an OpenTelemetry span per request and Prometheus metrics at /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from controlplane.app import create_app
from controlplane.bootstrap import ensure_operator_key
from controlplane.config import Settings
from controlplane.kit.migrate import migrate


async def test_api_request_span_and_metrics(
    tmp_path: Path, span_exporter: InMemorySpanExporter
) -> None:
    settings = Settings(data_dir=tmp_path)
    migrate(settings.sqlalchemy_url)
    operator_key = (await ensure_operator_key(settings)).read_text().strip()
    app = create_app(settings)
    span_exporter.clear()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://stratus") as client:
            created = await client.post(
                "/api/v1/accounts",
                json={"name": "Traced", "owner_email": "t@traced.example"},
                headers={"Authorization": f"Bearer {operator_key}", "X-Request-Id": "req-42"},
            )
            assert created.status_code == 201
            assert created.headers["x-request-id"] == "req-42"
            refused = await client.get("/api/v1/namespaces")
            assert refused.status_code == 401
            metrics = await client.get("/metrics")

    finished = span_exporter.get_finished_spans()
    spans = {span.name: span for span in finished}
    assert [span.name for span in finished].count("POST /api/v1/accounts") == 1
    create_span = spans["POST /api/v1/accounts"]
    assert create_span.attributes is not None
    assert create_span.attributes["http.route"] == "/api/v1/accounts"
    assert create_span.attributes["http.response.status_code"] == 201
    assert create_span.attributes["stratus.request_id"] == "req-42"
    list_span = spans["GET /api/v1/namespaces"]
    assert list_span.attributes is not None
    assert list_span.attributes["http.response.status_code"] == 401

    assert metrics.status_code == 200
    assert (
        'stratus_api_requests_total{method="POST",route="/api/v1/accounts",status="201"} 1.0'
        in metrics.text
    )
    assert (
        'stratus_api_requests_total{method="GET",route="/api/v1/namespaces",status="401"} 1.0'
        in metrics.text
    )
