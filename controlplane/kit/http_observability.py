"""Request ids, OpenTelemetry span attributes and Prometheus metrics for the HTTP API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import Metric
from starlette.routing import Match

from controlplane.kit.context import request_id_var
from controlplane.kit.errors import unexpected_error_response


def _route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", request.url.path))
    return "unmatched"


class ScrapedCollector(Protocol):
    """Metrics read from elsewhere (e.g. the database) right before each scrape."""

    async def refresh(self, request: Request) -> None: ...

    def collect(self) -> Iterable[Metric]: ...


def install(app: FastAPI, collectors: Sequence[ScrapedCollector] = ()) -> None:
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    requests = Counter(
        "stratus_api_requests",
        "API requests by route, method and status",
        ["method", "route", "status"],
        registry=registry,
    )
    latency = Histogram(
        "stratus_api_request_duration_seconds",
        "API request latency",
        ["method", "route"],
        registry=registry,
    )

    @app.middleware("http")
    async def observe(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        token = request_id_var.set(request_id)
        route = _route_template(request)
        started = time.perf_counter()
        try:
            # The server span FastAPI's own OpenTelemetry support opened (its spans and
            # http.server.request.duration metric need no middleware of ours); we add the
            # attributes only Stratus knows.
            span = trace.get_current_span()
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("http.route", route)
            span.set_attribute("stratus.request_id", request_id)
            try:
                response = await call_next(request)
            except Exception as exc:  # every error is answered as problem+json
                response = unexpected_error_response(request, exc, request_id)
            span.set_attribute("http.response.status_code", response.status_code)
            principal = getattr(request.state, "principal", None)
            if principal is not None and principal.account_id:
                span.set_attribute("stratus.account_id", principal.account_id)
        finally:
            request_id_var.reset(token)
        if route != "/metrics":
            requests.labels(request.method, route, str(response.status_code)).inc()
            latency.labels(request.method, route).observe(time.perf_counter() - started)
        response.headers["X-Request-Id"] = request_id
        return response

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        for collector in collectors:
            await collector.refresh(request)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
