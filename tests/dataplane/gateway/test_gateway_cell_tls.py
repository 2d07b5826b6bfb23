"""The gateway reaches a registered cell over mTLS (the cell's CA, server name and client
certificate), and answers UNAVAILABLE — without naming the cell — for a namespace whose cell is
unhealthy, unknown or fails the TLS handshake, naming the cell and the reason in its log."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
import grpc.aio
import pytest
from gateway_support import route
from gateway_workflows import GreetingWorkflow, greet
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client
from temporalio.worker import Worker

from auth import generate_ca
from dataplane.gateway import Route

if TYPE_CHECKING:
    from conftest import Cells, GatewayFactory, Pki, RawChannel

    from infra.cell_frontend import CellFrontend

CELL_ID = "cell-ext-1"
DESCRIBE = "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"
SYSTEM_INFO = "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo"
TENANT_MESSAGE = "namespace orders.acct1 is temporarily unavailable; retry shortly"
LIST_NAMESPACES = "/temporal.api.workflowservice.v1.WorkflowService/ListNamespaces"
PROXY_LOGGER = "dataplane.gateway._proxy"


def tls_route(
    pki: Pki, cells: Cells, frontend: CellFrontend, *, unavailable: str = "", **tls: object
) -> Route:
    """Namespace A on cell A, reached through its mTLS frontend as a registered cell."""
    return dataclasses.replace(
        route(cells.namespace_a, frontend.address, pki.ca_a),
        cell_id=CELL_ID,
        cell_tls=frontend.tls(**tls),  # type: ignore[arg-type]
        cell_unavailable=unavailable,
    )


async def call_status(
    raw_channel: RawChannel, port: int, pki: Pki, path: str, body: bytes
) -> tuple[grpc.StatusCode, str]:
    async with raw_channel(port, pki.client_a) as channel:
        try:
            await channel.unary_unary(path)(body, timeout=10)
        except grpc.aio.AioRpcError as error:
            return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def describe_body(namespace: str) -> bytes:
    return wsv1.DescribeNamespaceRequest(namespace=namespace).SerializeToString()


def frontend_connections(frontend: CellFrontend) -> int:
    """Client connections nginx has accepted so far (it logs each at level info)."""
    return sum(
        " client 127.0.0.1:" in line and " connected to " in line
        for line in frontend.error_log.read_text().splitlines()
    )


def cell_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == PROXY_LOGGER]


async def test_worker_runs_a_workflow_on_a_cell_behind_mtls(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, cell_frontend: CellFrontend
) -> None:
    """A temporalio worker through the gateway completes a workflow whose namespace lives on a
    cell reachable only over mTLS (nginx refuses any connection without the cell's client
    certificate)."""
    gateway, _ = await make_gateway([tls_route(pki, cells, cell_frontend)])
    client = await Client.connect(
        f"127.0.0.1:{gateway.bound_port}", namespace=cells.namespace_a, tls=pki.tls(pki.client_a)
    )
    task_queue = f"greetings-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=task_queue, workflows=[GreetingWorkflow], activities=[greet]
    ):
        result = await client.execute_workflow(
            GreetingWorkflow.run,
            "mTLS cell",
            id=f"greet-{uuid.uuid4()}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=60),
        )
    assert result == "Hello, mTLS cell!"


@pytest.mark.parametrize(
    ("wrong", "log_reason"),
    [
        ("ca", "CERTIFICATE_VERIFY_FAILED"),
        ("server_name", "Hostname Verification Check failed"),
    ],
)
async def test_cell_failing_the_tls_handshake_answers_unavailable(
    make_gateway: GatewayFactory,
    pki: Pki,
    cells: Cells,
    cell_frontend: CellFrontend,
    raw_channel: RawChannel,
    caplog: pytest.LogCaptureFixture,
    wrong: str,
    log_reason: str,
) -> None:
    """The cell's certificate does not verify (another CA, another server name): the tenant
    gets UNAVAILABLE without the cell's name or address; the operator log names the cell and
    the TLS failure."""
    tls = {"ca": generate_ca("not the cell's CA")} if wrong == "ca" else {"server_name": "x.test"}
    gateway, _ = await make_gateway([tls_route(pki, cells, cell_frontend, **tls)])
    caplog.set_level(logging.WARNING, logger=PROXY_LOGGER)
    code, details = await call_status(
        raw_channel, gateway.bound_port, pki, DESCRIBE, describe_body(cells.namespace_a)
    )
    assert (code, details) == (grpc.StatusCode.UNAVAILABLE, TENANT_MESSAGE)
    lines = cell_log_lines(caplog)
    assert any(
        line.startswith(f"cell {CELL_ID} ({cell_frontend.address}) unavailable for namespace ")
        and log_reason in line
        for line in lines
    ), lines


async def test_unhealthy_cell_answers_unavailable_without_reaching_it(
    make_gateway: GatewayFactory,
    pki: Pki,
    cells: Cells,
    cell_frontend: CellFrontend,
    raw_channel: RawChannel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cell the control plane reports unhealthy: UNAVAILABLE with the tenant message for
    namespace calls and cluster calls on the namespace's connection, and not one connection
    reaches the cell's frontend; the log names the cell."""
    reason = "the control plane reports the cell unhealthy"
    gateway, _ = await make_gateway([tls_route(pki, cells, cell_frontend, unavailable=reason)])
    caplog.set_level(logging.WARNING, logger=PROXY_LOGGER)
    port = gateway.bound_port
    connections_before = frontend_connections(cell_frontend)
    assert await call_status(
        raw_channel, port, pki, DESCRIBE, describe_body(cells.namespace_a)
    ) == (grpc.StatusCode.UNAVAILABLE, TENANT_MESSAGE)
    for path, body in (
        (SYSTEM_INFO, wsv1.GetSystemInfoRequest().SerializeToString()),
        (LIST_NAMESPACES, wsv1.ListNamespacesRequest().SerializeToString()),
    ):
        assert await call_status(raw_channel, port, pki, path, body) == (
            grpc.StatusCode.UNAVAILABLE,
            TENANT_MESSAGE,
        )
    assert frontend_connections(cell_frontend) == connections_before
    assert (
        f"cell {CELL_ID} ({cell_frontend.address}) unavailable for namespace "
        f"{cells.namespace_a}: {reason}"
    ) in cell_log_lines(caplog)


async def test_unavailable_cell_is_not_revealed_to_an_unadmitted_caller(
    make_gateway: GatewayFactory,
    pki: Pki,
    cells: Cells,
    cell_frontend: CellFrontend,
    raw_channel: RawChannel,
) -> None:
    """Another tenant (connected for its own namespace) asking for the namespace gets the usual
    PERMISSION_DENIED, not UNAVAILABLE: the state of a namespace's cell is only its own
    callers' business."""
    unhealthy = tls_route(pki, cells, cell_frontend, unavailable="unhealthy")
    other = route(cells.namespace_b, cells.address_b, pki.ca_b)
    gateway, _ = await make_gateway([unhealthy, other])
    async with raw_channel(gateway.bound_port, pki.client_b, cells.namespace_b) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(DESCRIBE)(describe_body(cells.namespace_a), timeout=10)
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_new_tls_material_rebuilds_the_channel(
    make_gateway: GatewayFactory,
    pki: Pki,
    cells: Cells,
    cell_frontend: CellFrontend,
    raw_channel: RawChannel,
) -> None:
    """A route whose cell TLS changes (here: a wrong CA corrected) is served on a new channel
    with the new material from the next applied table on."""
    wrong = tls_route(pki, cells, cell_frontend, ca=generate_ca("stale CA"))
    gateway, source = await make_gateway([wrong])
    port, body = gateway.bound_port, describe_body(cells.namespace_a)
    assert (await call_status(raw_channel, port, pki, DESCRIBE, body))[0] is (
        grpc.StatusCode.UNAVAILABLE
    )
    source.set([tls_route(pki, cells, cell_frontend)])
    await gateway.refresh()
    assert await call_status(raw_channel, port, pki, DESCRIBE, body) == (grpc.StatusCode.OK, "")
