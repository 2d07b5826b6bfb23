"""Traces, metrics and logs of every Stratus process: the gateway's and, through this module, the
control plane's (which may import the data plane, never the reverse).

``configure_telemetry`` installs the global tracer and meter providers, shipping to the console
or to an OTLP collector (gRPC or HTTP/protobuf); ``configure_logging`` writes text lines or one
JSON object per line carrying the request's context (request id, account id) when known.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from pydantic import BaseModel, SecretStr

__all__ = [
    "LogFormat",
    "OtelExporter",
    "OtlpProtocol",
    "TelemetryOptions",
    "configure_logging",
    "configure_telemetry",
    "otlp_headers",
]

OtelExporter = Literal["none", "console", "otlp"]
OtlpProtocol = Literal["grpc", "http/protobuf"]
LogFormat = Literal["text", "json"]

# How often metrics are pushed to the collector (the SDK's default is a minute).
METRIC_EXPORT_INTERVAL_MS = 10_000

logger = logging.getLogger(__name__)

TEXT_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TelemetryOptions(BaseModel):
    """Where a process ships its traces and metrics; the same fields in every role's settings."""

    exporter: OtelExporter = "none"
    # The collector's address: grpc "http://collector:4317", http/protobuf
    # "http://collector:4318" (the /v1/traces and /v1/metrics paths are appended). Empty: the
    # exporter's default (OTEL_EXPORTER_OTLP_ENDPOINT, else localhost).
    endpoint: str = ""
    # Sent with every export, e.g. "authorization=Bearer abc,x-tenant=ops" (a secret).
    headers: SecretStr = SecretStr("")
    protocol: OtlpProtocol = "grpc"
    metric_export_interval_ms: int = METRIC_EXPORT_INTERVAL_MS


def configure_telemetry(service_name: str, options: TelemetryOptions) -> None:
    """Install the global tracer and meter providers, tagged ``service.name``. Without an
    exporter nothing is installed (spans stay OpenTelemetry's no-ops); metrics are shipped only
    to an OTLP collector (Prometheus scrapes them otherwise)."""
    if options.exporter == "none":
        # Nothing would read the spans: keep OpenTelemetry's no-op tracer (a recorded span
        # cost the API ~0.2 ms of CPU per request). Tests that read spans in process install
        # their own provider.
        return
    resource = Resource.create({"service.name": service_name})
    tracer_provider = TracerProvider(resource=resource)
    if options.exporter == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif options.exporter == "otlp":
        span_exporter, metric_exporter = _otlp_exporters(options)
        tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        reader = PeriodicExportingMetricReader(
            metric_exporter, export_interval_millis=options.metric_export_interval_ms
        )
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    trace.set_tracer_provider(tracer_provider)


def otlp_headers(options: TelemetryOptions) -> dict[str, str]:
    """The headers every OTLP export sends."""
    return _parse_headers(options.headers.get_secret_value())


def _otlp_exporters(options: TelemetryOptions) -> tuple[SpanExporter, MetricExporter]:
    headers = otlp_headers(options)
    if options.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        endpoint = options.endpoint or None
        return (
            OTLPSpanExporter(endpoint=endpoint, headers=headers),
            OTLPMetricExporter(endpoint=endpoint, headers=headers),
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    base = options.endpoint.rstrip("/")
    return (
        HttpSpanExporter(endpoint=f"{base}/v1/traces" if base else None, headers=headers),
        HttpMetricExporter(endpoint=f"{base}/v1/metrics" if base else None, headers=headers),
    )


def _parse_headers(text: str) -> dict[str, str]:
    """``key=value,key=value`` (the OTEL_EXPORTER_OTLP_HEADERS format) as a dict. A malformed
    pair is skipped with a warning that names its position only (headers carry secrets), as
    the OpenTelemetry SDK does with its own variable."""
    headers: dict[str, str] = {}
    for position, pair in enumerate(text.split(","), start=1):
        key, separator, value = pair.partition("=")
        if not separator or not key.strip():
            if pair.strip():
                logger.warning("OTLP header %d is not key=value; it is not sent", position)
            continue
        headers[key.strip().lower()] = value.strip()
    return headers


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, the context variables that
    are set (e.g. request_id, account_id) and the exception's traceback when there is one."""

    def __init__(self, context: Mapping[str, ContextVar[str | None]]) -> None:
        super().__init__()
        self._context = dict(context)

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, variable in self._context.items():
            value = variable.get()
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(
    level: str,
    log_format: LogFormat = "text",
    context: Mapping[str, ContextVar[str | None]] | None = None,
) -> None:
    """Configure the root logger: text lines, or JSON lines carrying ``context``'s values."""
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonLogFormatter(context or {}))
    else:
        handler.setFormatter(logging.Formatter(TEXT_LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
