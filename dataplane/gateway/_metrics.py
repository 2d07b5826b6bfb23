"""Counters of gateway traffic, per namespace and method: Prometheus (scraped) and
OpenTelemetry instruments (pushed to an OTLP collector when one is configured; no-ops
otherwise)."""

from __future__ import annotations

import bisect

import grpc
from opentelemetry import metrics
from prometheus_client import CollectorRegistry, Counter, Histogram

# Refused calls for namespaces that are not routed are counted under this label, so a caller
# cannot create unbounded label values by inventing namespace names.
UNROUTED = "-"
# Upper bounds (seconds) of the per-namespace latency histogram, +Inf implied: the gateway
# reports its counts per bucket with its route polls, the control plane serves them to the
# tenant (its metrics endpoint), so both sides read the bounds here.
NAMESPACE_LATENCY_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# Long polls wait for work by design (up to a minute): they would drown the latency a tenant
# watches, so the per-namespace histogram leaves them out.
_LONG_POLL_PREFIX = "Poll"


class NamespaceLatency:
    """One routed namespace's calls by latency bucket (not cumulative; the last is +Inf) and
    their total seconds, since the gateway started."""

    __slots__ = ("counts", "total_seconds")

    def __init__(self) -> None:
        self.counts = [0] * (len(NAMESPACE_LATENCY_BUCKETS) + 1)
        self.total_seconds = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(NAMESPACE_LATENCY_BUCKETS, seconds)] += 1
        self.total_seconds += seconds


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        # RESOURCE_EXHAUSTED answers per routed namespace since this process started, reported
        # to the control plane with the route polls (the workload insights' throttling).
        self.throttled: dict[str, int] = {}
        # Latency of the calls to each routed namespace (long polls aside), reported the same
        # way (the tenant's metrics endpoint).
        self.namespace_latency: dict[str, NamespaceLatency] = {}
        self._requests = Counter(
            "stratus_gateway_requests",
            "Gateway calls by namespace, method and gRPC status",
            ["namespace", "method", "code"],
            registry=self.registry,
        )
        self._actions = Counter(
            "stratus_gateway_actions",
            "Estimated actions admitted by the gateway, by namespace",
            ["namespace"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "stratus_gateway_request_duration_seconds",
            "Gateway call latency by method (long polls included)",
            ["method"],
            registry=self.registry,
        )
        self._namespace_latency = Histogram(
            "stratus_gateway_namespace_request_duration_seconds",
            "Gateway call latency by routed namespace (long polls left out)",
            ["namespace"],
            buckets=NAMESPACE_LATENCY_BUCKETS,
            registry=self.registry,
        )
        meter = metrics.get_meter("stratus.gateway")
        self._otel_requests = meter.create_counter(
            "stratus.gateway.requests", unit="{call}", description="Gateway calls"
        )
        self._otel_actions = meter.create_counter(
            "stratus.gateway.actions", unit="{action}", description="Estimated actions admitted"
        )
        self._otel_latency = meter.create_histogram(
            "stratus.gateway.request.duration", unit="s", description="Gateway call latency"
        )

    def record(self, namespace: str, method: str, code: grpc.StatusCode, seconds: float) -> None:
        self._requests.labels(namespace or UNROUTED, method, code.name).inc()
        if namespace and code is grpc.StatusCode.RESOURCE_EXHAUSTED:
            self.throttled[namespace] = self.throttled.get(namespace, 0) + 1
        self._latency.labels(method).observe(seconds)
        if namespace and not method.startswith(_LONG_POLL_PREFIX):
            latency = self.namespace_latency.get(namespace)
            if latency is None:
                latency = self.namespace_latency[namespace] = NamespaceLatency()
            latency.observe(seconds)
            self._namespace_latency.labels(namespace).observe(seconds)
        attributes = {"temporal.namespace": namespace or UNROUTED, "rpc.method": method}
        self._otel_requests.add(1, {**attributes, "rpc.grpc.status_code": code.value[0]})
        self._otel_latency.record(seconds, {"rpc.method": method})

    def record_actions(self, namespace: str, actions: int) -> None:
        if actions:
            self._actions.labels(namespace).inc(actions)
            self._otel_actions.add(actions, {"temporal.namespace": namespace})
