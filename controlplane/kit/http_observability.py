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
from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.kit.context import request_id_var
from controlplane.kit.errors import unexpected_error_response


def _route_template(request: Request) -> str:
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", request.url.path))
    return "unmatched"


Observe = Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]]


class ObservabilityMiddleware:
    """Pure ASGI (Starlette's ``BaseHTTPMiddleware`` runs every request through a task group
    and memory streams, which cost more than the rest of a cached read)."""

    def __init__(self, app: ASGIApp, observe: Observe) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.observe(scope, receive, send, self.app)


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

    # Each (method, route, status)'s two series, looked up once (``labels`` validates and
    # locks on every call).
    series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    # The router records the route it matched in the scope (without the prefixes of the
    # routers that include it): its full template is looked up once per route.
    templates: dict[int, str] = {}

    def _template(scope: Scope, request: Request) -> str:
        matched = scope.get("route")
        if matched is None:  # never routed (404, 413)
            return _route_template(request)
        template = templates.get(id(matched))
        if template is None:
            template = templates[id(matched)] = _route_template(request)
        return template

    async def observe(scope: Scope, receive: Receive, send: Send, app: ASGIApp) -> None:
        request = Request(scope)
        request_id = request.headers.get("x-request-id") or str(uuid.uuid4())
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        # The server span FastAPI's own OpenTelemetry support opened (its spans and
        # http.server.request.duration metric need no middleware of ours); we add the
        # attributes only Stratus knows, before it ends with the response.
        span = trace.get_current_span()
        span.set_attribute("http.request.method", request.method)
        span.set_attribute("stratus.request_id", request_id)
        status = 500
        route = "unmatched"
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status, route, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                route = _template(scope, request)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                principal = getattr(request.state, "principal", None)
                if principal is not None and principal.account_id:
                    span.set_attribute("stratus.account_id", principal.account_id)
                MutableHeaders(scope=message)["X-Request-Id"] = request_id
            await send(message)

        try:
            try:
                await app(scope, receive, send_with_request_id)
            except Exception as exc:  # every error is answered as problem+json
                if response_started:
                    raise
                response = unexpected_error_response(request, exc, request_id)
                await response(scope, receive, send_with_request_id)
        finally:
            request_id_var.reset(token)
        if route != "/metrics":
            key = (request.method, route, status)
            children = series.get(key)
            if children is None:
                children = series[key] = (
                    requests.labels(request.method, route, str(status)),
                    latency.labels(request.method, route),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - started)

    app.add_middleware(ObservabilityMiddleware, observe=observe)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        for collector in collectors:
            await collector.refresh(request)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
