"""``/api/v1/cells``: the Temporal clusters namespaces are placed on (operator only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.cells import service
from controlplane.cells.schemas import (
    CellHealthOut,
    CellList,
    CellNamespaceOut,
    CellOut,
    CellRegister,
)
from controlplane.kit.deps import SecretBoxDep, SessionDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute
from controlplane.models import Cell, Namespace
from controlplane.states import CellState

router = APIRouter(route_class=ApiRoute, prefix="/cells", tags=["cells"])
Problems: dict[int | str, dict[str, Any]] = {401: {}, 403: {}, 404: {}, 409: {}, 422: {}}
CellId = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")]


def _out(cell: Cell, count: int, namespaces: list[Namespace] | None = None) -> CellOut:
    return CellOut(
        id=cell.id,
        name=cell.id,
        provider=cell.provider,
        frontend=cell.address,
        metrics_url=cell.metrics_url,
        placement=cell.placement,
        max_namespaces=cell.max_namespaces,
        state=cell.state,
        server_version=cell.server_version,
        tls=cell.has_tls,
        server_name=cell.server_name,
        account_id=cell.account_id,
        namespace_count=count,
        health=CellHealthOut(
            state=cell.health_state, reason=cell.health_reason, checked_at=cell.health_checked_at
        ),
        namespaces=None
        if namespaces is None
        else [CellNamespaceOut(namespace_id=n.id, account_id=n.account_id) for n in namespaces],
    )


@router.post("", status_code=201, response_model=CellOut, responses=Problems)
async def register_cell(
    body: CellRegister,
    session: SessionDep,
    box: SecretBoxDep,
    principal: Annotated[Principal, Depends(requires(Action.CELL_MANAGE))],
) -> CellOut:
    """Register a Temporal cluster as an external cell. Its frontend must answer
    ``GetSystemInfo`` with the given TLS (422 ``cell-unreachable`` naming the reason otherwise:
    ``tls: unknown certificate authority``, ``tls: server name mismatch``, ``unreachable:
    connection refused``, ``timeout``...); nothing is stored then. The client key is stored
    encrypted and never returned."""
    cell = await service.register(
        session,
        principal,
        box,
        name=body.name,
        frontend=body.frontend,
        tls_ca=body.tls_ca,
        tls_cert=body.tls_cert,
        tls_key=body.tls_key,
        server_name=body.server_name,
        metrics_url=body.metrics_url,
        max_namespaces=body.max_namespaces,
        placement=body.placement,
    )
    return _out(cell, 0)


@router.get("", response_model=CellList, responses=Problems)
async def list_cells(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.CELL_MANAGE))],
    page: PageDep,
    state: Annotated[CellState | None, Query(description="Only cells in this state")] = None,
) -> CellList:
    """Every cell (local and registered) with its namespace count and last health probe, by
    id, a page at a time."""
    found = await service.page(session, principal, page, state=state)
    counts = await service.namespace_counts(session)
    return CellList(
        cells=[_out(cell, counts.get(cell.id, 0)) for cell in found.rows],
        next_page_token=found.next_page_token,
    )


@router.get("/{cell_id}", response_model=CellOut, responses=Problems)
async def get_cell(
    cell_id: CellId,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.CELL_MANAGE))],
) -> CellOut:
    """One cell with the namespaces placed on it."""
    cell = await service.get(session, principal, cell_id)
    namespaces = await service.namespaces_on(session, cell_id)
    return _out(cell, len(namespaces), namespaces)


async def _set_state(
    session: SessionDep, principal: Principal, cell_id: str, state: CellState
) -> CellOut:
    cell = await service.set_state(session, principal, cell_id, state)
    return _out(cell, (await service.namespace_counts(session)).get(cell_id, 0))


@router.post("/{cell_id}/drain", response_model=CellOut, responses=Problems)
async def drain_cell(
    cell_id: CellId,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.CELL_MANAGE))],
) -> CellOut:
    """Take no new namespaces on the cell (those on it keep running)."""
    return await _set_state(session, principal, cell_id, CellState.DRAINING)


@router.post("/{cell_id}/undrain", response_model=CellOut, responses=Problems)
async def undrain_cell(
    cell_id: CellId,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.CELL_MANAGE))],
) -> CellOut:
    """Let a drained cell take new namespaces again."""
    return await _set_state(session, principal, cell_id, CellState.ACTIVE)


@router.delete("/{cell_id}", status_code=204, responses=Problems)
async def deregister_cell(
    cell_id: CellId,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.CELL_MANAGE))],
) -> Response:
    """Forget a registered cell: 409 while namespaces live on it."""
    await service.deregister(session, principal, cell_id)
    return Response(status_code=204)
