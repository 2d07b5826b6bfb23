"""Tracing, metrics and logging set-up of the control plane's processes (the shared part lives
in ``dataplane.telemetry``, which the gateway uses too)."""

from __future__ import annotations

import dataclasses
import logging
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio.client import Interceptor
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    OpenTelemetryConfig,
    Runtime,
    TelemetryConfig,
)

from controlplane.kit.context import account_id_var, request_id_var
from dataplane import telemetry

if TYPE_CHECKING:
    from controlplane.config import StratusSettings


def configure_logging(level: str, log_format: telemetry.LogFormat = "text") -> None:
    """Text lines, or JSON lines carrying the request id and account id when known."""
    telemetry.configure_logging(
        level, log_format, {"request_id": request_id_var, "account_id": account_id_var}
    )


def configure_telemetry(service_name: str, settings: StratusSettings) -> None:
    """Install the tracer and meter providers; with an exporter, also trace the process's
    SQLAlchemy statements and httpx calls (the API's requests are traced always, see
    ``kit.http_observability``)."""
    telemetry.configure_telemetry(service_name, settings.telemetry)
    if settings.otel_exporter != "none":
        from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # Its declared range stops below SQLAlchemy 2.1; the engine events it hooks are the
        # same in 2.1 (tests/controlplane/test_api_otlp.py checks the spans arrive).
        SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
        HTTPXClientInstrumentor().instrument()


def temporal_runtime(service_name: str, settings: StratusSettings) -> Runtime | None:
    """The Temporal SDK runtime of the worker's client. With ``otlp`` it pushes the SDK's own
    metrics (task latencies, slots, polls) to the same collector; with JSON logs the SDK core's
    log lines go through Python logging (as JSON too). None: the SDK's default runtime."""
    options = settings.telemetry
    if options.exporter != "otlp" and settings.log_format != "json":
        return None
    metrics: OpenTelemetryConfig | None = None
    if options.exporter == "otlp":
        http = options.protocol == "http/protobuf"
        default = "http://localhost:4318" if http else "http://localhost:4317"
        url = (options.endpoint or default).rstrip("/")
        metrics = OpenTelemetryConfig(
            url=f"{url}/v1/metrics" if http else url,
            headers=telemetry.otlp_headers(options),
            metric_periodicity=timedelta(milliseconds=options.metric_export_interval_ms),
            durations_as_seconds=True,
            http=http,
        )
    logs = LoggingConfig.default
    if settings.log_format == "json":
        logs = dataclasses.replace(
            logs, forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
        )
    return Runtime(
        telemetry=TelemetryConfig(
            logging=logs, metrics=metrics, global_tags={"service.name": service_name}
        )
    )


def temporal_interceptors() -> list[Interceptor]:
    """Propagate trace context from the API's workflow start into the workflow and activities."""
    # Imported here: it pulls in temporalio's worker package, which an API process otherwise
    # never loads.
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]
