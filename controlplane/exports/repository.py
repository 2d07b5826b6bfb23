from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from controlplane.kit.tenancy import TenantRepository
from controlplane.models import (
    CreditNote,
    ExportSink,
    Invoice,
    InvoiceDelivery,
    InvoiceStatus,
    UsageRecord,
)


class ExportSinkRepository(TenantRepository):
    """The caller's account's export sink."""

    async def get(self) -> ExportSink | None:
        statement = self._scoped(select(ExportSink), ExportSink.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add(self, sink: ExportSink) -> None:
        self._add(sink)

    async def delete(self, sink: ExportSink) -> None:
        await self._delete(sink)


class SystemExportSinkRepository:
    """Every account's sink and what it exports: for the exporter in the worker."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all_account_ids(self) -> list[str]:
        statement = select(ExportSink.account_id).order_by(ExportSink.account_id)
        return list((await self.session.execute(statement)).scalars())

    async def get(self, account_id: str) -> ExportSink | None:
        return await self.session.get(ExportSink, account_id)

    async def usage_hours(
        self, account_id: str, since: dt.datetime, until: dt.datetime
    ) -> list[UsageRecord]:
        statement = select(UsageRecord).where(
            UsageRecord.account_id == account_id,
            UsageRecord.hour_start >= since,
            UsageRecord.hour_start < until,
        )
        return list((await self.session.execute(statement)).scalars())

    async def undelivered_invoices(self, account_id: str) -> list[Invoice]:
        statement = (
            select(Invoice)
            .outerjoin(InvoiceDelivery, InvoiceDelivery.invoice_id == Invoice.id)
            .where(
                Invoice.account_id == account_id,
                Invoice.status == InvoiceStatus.FINALIZED,
                InvoiceDelivery.invoice_id.is_(None),
            )
            .options(selectinload(Invoice.lines))
            .order_by(Invoice.period_start)
        )
        return list((await self.session.execute(statement)).scalars())

    async def credit_notes(self, invoice_id: str) -> list[CreditNote]:
        statement = (
            select(CreditNote)
            .where(CreditNote.invoice_id == invoice_id)
            .order_by(CreditNote.created_at, CreditNote.id)
        )
        return list((await self.session.execute(statement)).scalars())

    def add_delivery(self, delivery: InvoiceDelivery) -> None:
        self.session.add(delivery)
