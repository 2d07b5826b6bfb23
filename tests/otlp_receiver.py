"""A minimal OTLP collector for tests: it accepts trace and metric exports over gRPC and over
HTTP/protobuf on loopback ports and keeps them, flattened, for assertions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

T = TypeVar("T")


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attributes(pairs: Iterator[KeyValue] | list[KeyValue]) -> dict[str, object]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _service(resource: Resource) -> str:
    return str(_attributes(list(resource.attributes)).get("service.name", ""))


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    scope: str
    name: str
    attributes: dict[str, object]


@dataclass(frozen=True)
class ReceivedMetric:
    service: str
    scope: str
    name: str
    # The attributes of each data point.
    points: list[dict[str, object]]


@dataclass
class OtlpReceiver(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    """Start with ``start()``; ``endpoint`` is what an exporter is pointed at."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    metrics: list[ReceivedMetric] = field(default_factory=list)
    # The metadata of every export (e.g. the headers an exporter was configured with).
    metadata: list[dict[str, str]] = field(default_factory=list)
    # Exports the receiver could not read (the exporter sees UNKNOWN).
    errors: list[str] = field(default_factory=list)
    port: int = 0
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _server: grpc.Server | None = None
    _http: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """The gRPC endpoint."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def http_endpoint(self) -> str:
        """The HTTP/protobuf endpoint (exporters append /v1/traces and /v1/metrics)."""
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(self, server)
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _http_handler(self))
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()

    def received_over_http(self, path: str, body: bytes, headers: dict[str, str]) -> bool:
        """Record an HTTP export; False for a path OTLP does not define."""
        with self._changed:
            self.metadata.append(headers)
            if path == "/v1/traces":
                self._add_spans(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            elif path == "/v1/metrics":
                self._add_metrics(metrics_service_pb2.ExportMetricsServiceRequest.FromString(body))
            else:
                return False
            self._changed.notify_all()
        return True

    def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest
        | metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.ServicerContext,
    ) -> (
        trace_service_pb2.ExportTraceServiceResponse
        | metrics_service_pb2.ExportMetricsServiceResponse
    ):
        with self._changed:
            self.metadata.append({key: str(value) for key, value in context.invocation_metadata()})
            try:
                if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
                    self._add_spans(request)
                    answer: (
                        trace_service_pb2.ExportTraceServiceResponse
                        | metrics_service_pb2.ExportMetricsServiceResponse
                    ) = trace_service_pb2.ExportTraceServiceResponse()
                else:
                    self._add_metrics(request)
                    answer = metrics_service_pb2.ExportMetricsServiceResponse()
            except Exception as exc:
                self.errors.append(repr(exc))
                raise
            finally:
                self._changed.notify_all()
        return answer

    def _add_spans(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            service = _service(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            service,
                            scope_spans.scope.name,
                            span.name,
                            _attributes(list(span.attributes)),
                        )
                    )

    def _add_metrics(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        for resource_metrics in request.resource_metrics:
            service = _service(resource_metrics.resource)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    data = getattr(metric, metric.WhichOneof("data") or "sum")
                    points = [_attributes(list(point.attributes)) for point in data.data_points]
                    self.metrics.append(
                        ReceivedMetric(service, scope_metrics.scope.name, metric.name, points)
                    )

    def wait_for(self, found: Callable[[OtlpReceiver], T | None], timeout: float = 30.0) -> T:
        """The first truthy ``found(self)``, re-checked on every export; fails after timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = found(self)
                if result:
                    return result
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"the OTLP receiver never got it: spans "
                        f"{sorted({(s.service, s.name) for s in self.spans})}, metrics "
                        f"{sorted({(m.service, m.name) for m in self.metrics})}"
                    )
                self._changed.wait(remaining)


def _http_handler(receiver: OtlpReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {key.lower(): value for key, value in self.headers.items()}
            known = receiver.received_over_http(self.path, body, headers)
            self.send_response(200 if known else 404)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
