"""Tracing, metrics and logging set-up of the control plane's processes (the shared part lives
in ``dataplane.telemetry``, which the gateway uses too)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor

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


def temporal_interceptors() -> list[Interceptor]:
    """Propagate trace context from the API's workflow start into the workflow and activities."""
    return [TracingInterceptor()]
