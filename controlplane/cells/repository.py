"""The control plane's record of cells (which account runs where) and of their health."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.models import Account, Cell, CellHealth, Namespace, NamespaceState
from controlplane.states import AccountState, CellState
from dataplane.cells import CellHealthState, CellProviderKind


class CellRepository:
    """Cells are infrastructure, read by the worker on behalf of the system, not by tenants."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_for_account(self, account_id: str) -> Cell | None:
        """The cell dedicated to the account (its local cell, or a registered one it took)."""
        result = await self.session.execute(select(Cell).where(Cell.account_id == account_id))
        return result.scalar_one_or_none()

    async def get(self, cell_id: str) -> Cell | None:
        return await self.session.get(Cell, cell_id)

    async def page(self, page: PageRequest, *, state: CellState | None) -> Page[Cell]:
        """A page of every cell by id; only those in ``state`` when given."""
        statement = select(Cell)
        if state is not None:
            statement = statement.where(Cell.state == state)
        return await fetch_page(
            self.session,
            statement,
            page=page,
            order=(Cell.id,),
            list_name="cells",
            account_id=None,
            filters={"state": state},
        )

    async def list_all(self) -> list[Cell]:
        return list((await self.session.execute(select(Cell).order_by(Cell.id))).scalars())

    async def list_local(self) -> list[Cell]:
        """The cells Stratus runs itself (each an account's): the keeper's to keep running."""
        statement = select(Cell).where(Cell.provider == CellProviderKind.LOCAL.value)
        return list((await self.session.execute(statement.order_by(Cell.id))).scalars())

    async def removed(self) -> set[str]:
        """Local cells of deleted accounts whose data was removed: never started again."""
        statement = (
            select(Cell.id)
            .join(Account, Account.id == Cell.account_id)
            .where(Account.data_removed_at.is_not(None))
        )
        return set((await self.session.execute(statement)).scalars())

    async def of_accounts_due_for_removal(
        self, now: dt.datetime
    ) -> list[tuple[Account, list[Cell]]]:
        """Deleted accounts whose data retention ended by ``now`` and whose data is not removed
        yet, each with the local cells it had."""
        statement = (
            select(Account)
            .where(
                Account.state == AccountState.DELETED,
                Account.data_removal_after <= now,
                Account.data_removed_at.is_(None),
            )
            .order_by(Account.id)
        )
        accounts = list((await self.session.execute(statement)).scalars())
        due = []
        for account in accounts:
            cells = select(Cell).where(
                Cell.account_id == account.id, Cell.provider == CellProviderKind.LOCAL.value
            )
            due.append((account, list((await self.session.execute(cells)).scalars())))
        return due

    async def list_serving(self) -> list[Cell]:
        """Cells that should be running: every cell but those stopped for being idle."""
        idle = select(CellHealth.cell_id).where(CellHealth.state == CellHealthState.IDLE)
        statement = select(Cell).where(Cell.id.not_in(idle)).order_by(Cell.id)
        return list((await self.session.execute(statement)).scalars())

    async def namespaces_on_cells(self) -> list[Namespace]:
        """Every namespace registered on a cell (those being deleted are left out)."""
        statement = (
            select(Namespace)
            .where(Namespace.cell_id.is_not(None), Namespace.state != NamespaceState.DELETING)
            .order_by(Namespace.cell_id, Namespace.id)
        )
        return list((await self.session.execute(statement)).scalars())

    async def namespace_counts(self) -> dict[str, int]:
        """Namespaces per account that are (or may yet be) on the account's own cell, in any
        state (one being created or deleted counts): those without a cell yet and those on a
        cell dedicated to the account. Namespaces placed on shared cells do not keep the
        account's local cell running."""
        dedicated = select(Cell.id).where(Cell.account_id == Namespace.account_id)
        statement = (
            select(Namespace.account_id, func.count())
            .where(Namespace.cell_id.is_(None) | Namespace.cell_id.in_(dedicated))
            .group_by(Namespace.account_id)
        )
        return {account_id: count for account_id, count in await self.session.execute(statement)}

    def add(self, cell: Cell) -> None:
        self.session.add(cell)


class CellHealthRepository:
    """What the watchers last saw of every cell (system-wide: read by /readyz and /metrics)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_cell(self) -> dict[str, CellHealth]:
        rows = (await self.session.execute(select(CellHealth))).scalars()
        return {row.cell_id: row for row in rows}

    async def list_all(self) -> list[CellHealth]:
        statement = select(CellHealth).order_by(CellHealth.cell_id)
        return list((await self.session.execute(statement)).scalars())

    async def failing(self) -> list[CellHealth]:
        statement = (
            select(CellHealth)
            .where(CellHealth.state == CellHealthState.FAILING)
            .order_by(CellHealth.cell_id)
        )
        return list((await self.session.execute(statement)).scalars())

    def add(self, row: CellHealth) -> None:
        self.session.add(row)
