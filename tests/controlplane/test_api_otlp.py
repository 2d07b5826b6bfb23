"""The API process ships its traces and metrics to an OTLP collector and writes JSON logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from otlp_receiver import OtlpReceiver, ReceivedMetric, ReceivedSpan
from support import ApiAlone

from auth import generate_ca
from controlplane.client import StratusClient

pytestmark = pytest.mark.slow  # it starts the API process


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_api_exports_spans_and_metrics_over_otlp_and_logs_json(
    tmp_path: Path, receiver: OtlpReceiver, protocol: str
) -> None:
    """With STRATUS_OTEL_EXPORTER=otlp (over gRPC or HTTP/protobuf) the API's request spans
    (today's attributes), its SQLAlchemy statements and its HTTP metrics reach the collector as
    service stratus-api, with the configured headers; with STRATUS_LOG_FORMAT=json every log
    line is a JSON object, and a line logged while serving a tenant carries its request id and
    account id."""
    api = ApiAlone(
        tmp_path / "data",
        extra_env={
            "STRATUS_OTEL_EXPORTER": "otlp",
            "STRATUS_OTEL_EXPORTER_OTLP_ENDPOINT": (
                receiver.endpoint if protocol == "grpc" else receiver.http_endpoint
            ),
            "STRATUS_OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "STRATUS_OTEL_EXPORTER_OTLP_HEADERS": "x-collector-token=collector-secret",
            "STRATUS_LOG_FORMAT": "json",
        },
    )
    api.start()
    try:
        with StratusClient(api.url, api.operator_key) as operator:
            created = operator.create_account("Traced", "owner@traced.example")
        account_id = created.account.id
        tenant_key = created.owner_api_key.token
        # The system cell is unreachable here, so the create logs that its workflow waits.
        answered = httpx.post(
            f"{api.url}/api/v1/namespaces",
            json={
                "name": "orders",
                "accepted_client_ca": generate_ca("traced CA").cert_pem.decode(),
            },
            headers={"Authorization": f"Bearer {tenant_key}", "X-Request-Id": "req-otlp-7"},
            timeout=60,
        )
        assert answered.status_code == 202, answered.text

        def create_span(r: OtlpReceiver) -> ReceivedSpan | None:
            return next(
                (
                    s
                    for s in r.spans
                    if s.name == "POST /api/v1/namespaces"
                    and s.attributes.get("stratus.request_id") == "req-otlp-7"
                ),
                None,
            )

        span = receiver.wait_for(create_span)
        assert span.service == "stratus-api"
        assert span.attributes["http.request.method"] == "POST"
        assert span.attributes["http.route"] == "/api/v1/namespaces"
        assert span.attributes["http.response.status_code"] == 202
        assert span.attributes["stratus.account_id"] == account_id
        receiver.wait_for(
            lambda r: [
                s
                for s in r.spans
                if s.service == "stratus-api" and s.scope.endswith("instrumentation.sqlalchemy")
            ]
        )

        def request_duration(r: OtlpReceiver) -> ReceivedMetric | None:
            return next(
                (
                    m
                    for m in r.metrics
                    if m.service == "stratus-api"
                    and m.name == "http.server.request.duration"
                    and any(p.get("http.route") == "/api/v1/namespaces" for p in m.points)
                ),
                None,
            )

        receiver.wait_for(request_duration)
        assert all(m["x-collector-token"] == "collector-secret" for m in receiver.metadata)
    finally:
        api.stop()

    lines = api.log_path.read_text().splitlines()
    # The effective-settings line is printed before logging starts; it hides the headers.
    effective = next(line for line in lines if line.startswith("effective settings: api "))
    assert "collector-secret" not in effective
    entries = [json.loads(line) for line in lines if not line.startswith("effective settings")]
    assert entries, "the API logged nothing"
    assert all({"timestamp", "level", "logger", "message"} <= entry.keys() for entry in entries)
    waiting = [entry for entry in entries if "could not start operation" in entry["message"]]
    assert waiting, entries
    assert waiting[0]["request_id"] == "req-otlp-7"
    assert waiting[0]["account_id"] == account_id
