"""Tracing (OpenTelemetry) and logging set-up shared by every Stratus process."""

from __future__ import annotations

import logging

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def configure_tracing(service_name: str, exporter: str) -> None:
    """Install the global tracer provider. Without an exporter spans are still created (and
    can be read by an in-process exporter), just not shipped anywhere."""
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def temporal_interceptors() -> list[Interceptor]:
    """Propagate trace context from the API's workflow start into the workflow and activities."""
    return [TracingInterceptor()]
