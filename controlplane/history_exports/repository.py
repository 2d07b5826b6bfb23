from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.kit.tenancy import TenantRepository
from controlplane.models import HistoryExportSink, Namespace


class HistoryExportSinkRepository(TenantRepository):
    """The history export sinks of the caller's account's namespaces."""

    async def get(self, namespace_id: str) -> HistoryExportSink | None:
        statement = self._scoped(
            select(HistoryExportSink).where(HistoryExportSink.namespace_id == namespace_id),
            HistoryExportSink.account_id,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add(self, sink: HistoryExportSink) -> None:
        self._add(sink)

    async def delete(self, sink: HistoryExportSink) -> None:
        await self._delete(sink)


class SystemHistoryExportSinkRepository:
    """Every namespace's history export sink: for the exporter in the worker."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all_namespace_ids(self) -> list[str]:
        statement = select(HistoryExportSink.namespace_id).order_by(HistoryExportSink.namespace_id)
        return list((await self.session.execute(statement)).scalars())

    async def get(self, namespace_id: str) -> HistoryExportSink | None:
        return await self.session.get(HistoryExportSink, namespace_id)

    async def namespace(self, namespace_id: str) -> Namespace | None:
        return await self.session.get(Namespace, namespace_id)
