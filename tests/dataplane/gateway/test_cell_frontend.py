"""The mTLS cell frontend fixture (infra/cell_frontend.py) is a real TLS terminator: the right
client reaches the cell through it; a foreign client certificate, another CA or another server
name does not."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from support import wait_until
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client

from auth import generate_ca, generate_leaf
from dataplane.cells import temporal_tls_config

if TYPE_CHECKING:
    from conftest import Cells

    from infra.cell_frontend import CellFrontend


async def test_client_with_the_cells_tls_reaches_the_cell(
    cell_frontend: CellFrontend, cells: Cells
) -> None:
    """temporalio connects through nginx with the frontend's CA, server name and client
    certificate and sees cell A's namespace."""
    client = await Client.connect(
        cell_frontend.address, tls=temporal_tls_config(cell_frontend.tls())
    )
    described = await client.workflow_service.describe_namespace(
        wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a)
    )
    assert described.namespace_info.name == cells.namespace_a


async def test_foreign_client_certificate_is_refused(cell_frontend: CellFrontend) -> None:
    """A client certificate of another CA: nginx refuses the handshake (and logs why)."""
    foreign = generate_leaf(generate_ca("someone else's CA"), "intruder")
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await Client.connect(
            cell_frontend.address, tls=temporal_tls_config(cell_frontend.tls(client=foreign))
        )
    wait_until(
        lambda: "client SSL certificate verify error" in cell_frontend.error_log.read_text(),
        timeout=10,
    )


async def test_wrong_server_name_fails_verification(cell_frontend: CellFrontend) -> None:
    with pytest.raises(RuntimeError, match=r"NotValidForName.*other\.cell\.test"):
        await Client.connect(
            cell_frontend.address,
            tls=temporal_tls_config(cell_frontend.tls(server_name="other.cell.test")),
        )


async def test_wrong_ca_fails_verification(cell_frontend: CellFrontend) -> None:
    with pytest.raises(RuntimeError, match="UnknownIssuer"):
        await Client.connect(
            cell_frontend.address,
            tls=temporal_tls_config(cell_frontend.tls(ca=generate_ca("not the cell's CA"))),
        )
