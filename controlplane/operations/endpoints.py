from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.kit.deps import ReadSessionDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute
from controlplane.operations import service
from controlplane.operations.schemas import AsyncOperationList, AsyncOperationOut
from controlplane.states import OperationState

router = APIRouter(route_class=ApiRoute, prefix="/operations", tags=["operations"])
ReadOperations = Annotated[Principal, Depends(requires(Action.OPERATION_READ, read_only=True))]


@router.get("", response_model=AsyncOperationList)
async def list_operations(
    session: ReadSessionDep,
    principal: ReadOperations,
    page: PageDep,
    state: Annotated[
        OperationState | None, Query(description="Only operations in this state")
    ] = None,
    operation_type: Annotated[
        str | None, Query(alias="type", description="Only this type, e.g. namespace.create")
    ] = None,
) -> AsyncOperationList:
    """The account's async operations, newest first, a page at a time."""
    found = await service.page(session, principal, page, state=state, operation_type=operation_type)
    return AsyncOperationList(
        operations=[AsyncOperationOut.model_validate(op) for op in found.rows],
        next_page_token=found.next_page_token,
    )


@router.get("/{operation_id}", response_model=AsyncOperationOut, responses={404: {}})
async def get_operation(
    operation_id: str, session: ReadSessionDep, principal: ReadOperations
) -> AsyncOperationOut:
    return AsyncOperationOut.model_validate(await service.get(session, principal, operation_id))
