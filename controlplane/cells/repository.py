from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.models import Cell, Namespace, NamespaceState


class CellRepository:
    """Cells are infrastructure, read by the worker on behalf of the system, not by tenants."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_for_account(self, account_id: str) -> Cell | None:
        result = await self.session.execute(select(Cell).where(Cell.account_id == account_id))
        return result.scalar_one_or_none()

    async def get(self, cell_id: str) -> Cell | None:
        return await self.session.get(Cell, cell_id)

    async def list_all(self) -> list[Cell]:
        return list((await self.session.execute(select(Cell).order_by(Cell.id))).scalars())

    async def namespaces_on_cells(self) -> list[Namespace]:
        """Every namespace registered on a cell (those being deleted are left out)."""
        statement = (
            select(Namespace)
            .where(Namespace.cell_id.is_not(None), Namespace.state != NamespaceState.DELETING)
            .order_by(Namespace.cell_id, Namespace.id)
        )
        return list((await self.session.execute(statement)).scalars())

    def add(self, cell: Cell) -> None:
        self.session.add(cell)
