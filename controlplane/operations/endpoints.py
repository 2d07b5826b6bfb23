from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.kit.deps import ReadSessionDep
from controlplane.kit.routing import ApiRoute
from controlplane.operations import service
from controlplane.operations.schemas import AsyncOperationList, AsyncOperationOut

router = APIRouter(route_class=ApiRoute, prefix="/operations", tags=["operations"])
ReadOperations = Annotated[Principal, Depends(requires(Action.OPERATION_READ, read_only=True))]


@router.get("", response_model=AsyncOperationList)
async def list_operations(session: ReadSessionDep, principal: ReadOperations) -> AsyncOperationList:
    """The account's most recent async operations, newest first."""
    operations = await service.list_recent(session, principal)
    return AsyncOperationList(
        operations=[AsyncOperationOut.model_validate(op) for op in operations]
    )


@router.get("/{operation_id}", response_model=AsyncOperationOut, responses={404: {}})
async def get_operation(
    operation_id: str, session: ReadSessionDep, principal: ReadOperations
) -> AsyncOperationOut:
    return AsyncOperationOut.model_validate(await service.get(session, principal, operation_id))
