from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action
from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import AsyncOperation, OperationState


def _latest_on(resource_id: str) -> Select[AsyncOperation]:
    # The id breaks a tie of timestamps, so the answer is the same on every read.
    return (
        select(AsyncOperation)
        .where(AsyncOperation.resource_id == resource_id)
        .order_by(AsyncOperation.created_at.desc(), AsyncOperation.id.desc())
        .limit(1)
    )


def _filtered(state: OperationState | None, operation_type: str | None) -> Select[AsyncOperation]:
    statement = select(AsyncOperation)
    if state is not None:
        statement = statement.where(AsyncOperation.state == state)
    if operation_type is not None:
        statement = statement.where(AsyncOperation.operation_type == operation_type)
    return statement


async def _page(
    session: AsyncSession,
    statement: Select[AsyncOperation],
    page: PageRequest,
    account_id: str | None,
    state: OperationState | None,
    operation_type: str | None,
) -> Page[AsyncOperation]:
    return await fetch_page(
        session,
        statement,
        page=page,
        order=(AsyncOperation.created_at, AsyncOperation.id),
        descending=True,
        list_name="operations",
        account_id=account_id,
        filters={"state": state, "type": operation_type},
    )


class OperationRepository(TenantRepository):
    """The caller's account's async operations."""

    async def get(self, async_operation_id: str) -> AsyncOperation | None:
        """The account's operation its clients know as ``async_operation_id``."""
        statement = self._scoped(
            select(AsyncOperation).where(AsyncOperation.async_operation_id == async_operation_id),
            AsyncOperation.account_id,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def page_readable(
        self, page: PageRequest, *, state: OperationState | None, operation_type: str | None
    ) -> Page[AsyncOperation]:
        """A page of the account's operations on namespaces the caller may read, newest
        first; only those in ``state`` and of ``operation_type`` when given."""
        statement = self._scoped_to_namespaces(
            _filtered(state, operation_type),
            AsyncOperation.account_id,
            AsyncOperation.resource_id,
            Action.OPERATION_READ,
        )
        return await _page(self.session, statement, page, self.account_id, state, operation_type)

    async def list_readable(self, *, limit: int = 100) -> list[AsyncOperation]:
        """The account's operations on namespaces the caller may read, newest first."""
        statement = self._scoped_to_namespaces(
            select(AsyncOperation).order_by(AsyncOperation.created_at.desc()).limit(limit),
            AsyncOperation.account_id,
            AsyncOperation.resource_id,
            Action.OPERATION_READ,
        )
        return list((await self.session.execute(statement)).scalars())

    async def latest_for(self, resource_id: str) -> AsyncOperation | None:
        """The newest of the account's operations on ``resource_id``, if the caller may read
        that namespace's operations."""
        statement = self._scoped_to_namespaces(
            _latest_on(resource_id),
            AsyncOperation.account_id,
            AsyncOperation.resource_id,
            Action.OPERATION_READ,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add(self, operation: AsyncOperation) -> None:
        self._add(operation)


class SystemOperationRepository:
    """Every account's operations: for the worker (which acts for the control plane) and the
    operator (who follows operations in any account)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(
        self, page: PageRequest, *, state: OperationState | None, operation_type: str | None
    ) -> Page[AsyncOperation]:
        """A page of every account's operations, newest first."""
        statement = _filtered(state, operation_type)
        return await _page(self.session, statement, page, None, state, operation_type)

    async def list_recent(self, *, limit: int = 100) -> list[AsyncOperation]:
        statement = select(AsyncOperation).order_by(AsyncOperation.created_at.desc()).limit(limit)
        return list((await self.session.execute(statement)).scalars())

    async def latest_for(self, resource_id: str) -> AsyncOperation | None:
        """The newest operation on ``resource_id`` (a namespace id names its account)."""
        return (await self.session.execute(_latest_on(resource_id))).scalar_one_or_none()

    async def get(self, operation_id: str) -> AsyncOperation | None:
        """By internal id (the workflow's)."""
        return await self.session.get(AsyncOperation, operation_id)

    async def in_any_account(self, async_operation_id: str) -> list[AsyncOperation]:
        """Every account's operation known to its clients as ``async_operation_id``."""
        statement = select(AsyncOperation).where(
            AsyncOperation.async_operation_id == async_operation_id
        )
        return list((await self.session.execute(statement)).scalars())

    async def pending(self) -> list[AsyncOperation]:
        statement = select(AsyncOperation).where(AsyncOperation.state == OperationState.PENDING)
        return list((await self.session.execute(statement)).scalars())

    def add(self, operation: AsyncOperation) -> None:
        self.session.add(operation)
