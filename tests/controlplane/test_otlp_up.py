"""``stratus up`` with STRATUS_OTEL_EXPORTER=otlp: the API, the worker and the gateway each ship
their traces and metrics to the collector under their own service name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from otlp_receiver import OtlpReceiver
from support import (
    StratusUp,
    create_active_namespace,
    free_port,
    new_tenant,
    tls_for,
)
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client

pytestmark = pytest.mark.slow  # it runs a whole `stratus up`

ROLES = {"stratus-api", "stratus-worker", "stratus-gateway"}


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


async def test_every_role_exports_over_otlp(tmp_path: Path, receiver: OtlpReceiver) -> None:
    """A namespace create is traced by the API (its request), the worker (its workflow) and,
    once a client uses the namespace, the gateway (the call); each role also pushes metrics.
    The settings reach every child from the supervisor's environment alone, and every child
    logs JSON lines."""
    stratus = StratusUp(
        tmp_path / "data",
        api_port=free_port(),
        gateway_port=free_port(),
        extra_env={
            "STRATUS_OTEL_EXPORTER": "otlp",
            "STRATUS_OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "STRATUS_LOG_FORMAT": "json",
        },
    )
    stratus.start()
    try:
        tenant = new_tenant(stratus, "Observed")
        namespace_id = create_active_namespace(stratus, tenant, "orders")
        client = await Client.connect(
            stratus.gateway_address,
            namespace=namespace_id,
            tls=tls_for(stratus, tenant.client_cert, namespace_id),
        )
        await client.workflow_service.describe_namespace(
            wsv1.DescribeNamespaceRequest(namespace=namespace_id)
        )

        def traced(r: OtlpReceiver) -> bool:
            names = {(s.service, s.name) for s in r.spans}
            return {
                ("stratus-api", "POST /api/v1/namespaces"),
                ("stratus-gateway", "DescribeNamespace"),
            } <= names and any(
                service == "stratus-worker" and name.startswith("RunWorkflow:")
                for service, name in names
            )

        receiver.wait_for(traced, timeout=60)
        receiver.wait_for(lambda r: {m.service for m in r.metrics} >= ROLES, timeout=60)
        # The worker's Temporal SDK pushes its own metrics too.
        receiver.wait_for(
            lambda r: [
                m
                for m in r.metrics
                if m.service == "stratus-worker" and m.name == "temporal_workflow_completed"
            ]
        )
    finally:
        assert stratus.stop() == 0
    assert receiver.errors == []
    logs = stratus.data_dir / "logs"
    for role in ("api", "worker", "gateway"):
        lines = (logs / f"{role}.log").read_text().splitlines()
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        assert entries, f"the {role} logged no JSON line"
        assert len(entries) == len(
            [line for line in lines if not line.startswith("effective settings")]
        ), f"the {role} logged lines that are not JSON"
