from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import (
    Account,
    AccountPlan,
    Credit,
    CreditNote,
    Invoice,
    InvoiceDelivery,
    InvoiceLine,
    InvoiceStatus,
    UsageRecord,
)

Usage = dict[tuple[str, str], int]


class InvoiceRepository(TenantRepository):
    """The caller's account's invoices and their credit notes."""

    async def page(
        self, page: PageRequest, *, status: InvoiceStatus | None, month: dt.datetime | None
    ) -> Page[Invoice]:
        """A page of the account's invoices, newest month first; only those in ``status`` and
        of the month starting at ``month`` when given."""
        statement = self._scoped(select(Invoice), Invoice.account_id)
        if status is not None:
            statement = statement.where(Invoice.status == status)
        if month is not None:
            statement = statement.where(Invoice.period_start == month)
        return await fetch_page(
            self.session,
            statement,
            page=page,
            order=(Invoice.period_start, Invoice.id),
            descending=True,
            list_name="invoices",
            account_id=self.account_id,
            filters={"status": status, "month": month},
        )

    async def list_all(self) -> list[Invoice]:
        statement = self._scoped(
            select(Invoice).order_by(Invoice.period_start.desc()), Invoice.account_id
        )
        return list((await self.session.execute(statement)).scalars())

    async def get(self, invoice_id: str) -> Invoice | None:
        statement = self._scoped(
            select(Invoice).where(Invoice.id == invoice_id).options(selectinload(Invoice.lines)),
            Invoice.account_id,
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def credit_notes(self, invoice_ids: Sequence[str]) -> dict[str, list[CreditNote]]:
        statement = self._scoped(_credit_notes_of(invoice_ids), CreditNote.account_id)
        return _by_invoice(invoice_ids, (await self.session.execute(statement)).scalars())


class SystemInvoiceRepository:
    """Every account's invoices: for the billing cycle in the worker and the operator's credit
    notes, never for a tenant's request."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def credit_notes(self, invoice_ids: Sequence[str]) -> dict[str, list[CreditNote]]:
        statement = _credit_notes_of(invoice_ids)
        return _by_invoice(invoice_ids, (await self.session.execute(statement)).scalars())

    async def get(self, invoice_id: str) -> Invoice | None:
        return await self.session.get(Invoice, invoice_id)

    async def get_with_lines(self, invoice_id: str) -> Invoice | None:
        statement = (
            select(Invoice).where(Invoice.id == invoice_id).options(selectinload(Invoice.lines))
        )
        return (await self.session.execute(statement)).scalar_one_or_none()

    def add_credit_note(self, note: CreditNote) -> None:
        self.session.add(note)

    async def forget_delivery(self, invoice_id: str) -> None:
        await self.session.execute(
            delete(InvoiceDelivery).where(InvoiceDelivery.invoice_id == invoice_id)
        )

    async def accounts_active_before(
        self, moment: dt.datetime, account_ids: Sequence[str] | None
    ) -> list[Account]:
        statement = select(Account).where(Account.created_at < moment).order_by(Account.id)
        if account_ids is not None:
            statement = statement.where(Account.id.in_(account_ids))
        return list((await self.session.execute(statement)).scalars())

    async def invoices_of_month(self, period_start: dt.datetime) -> dict[str, Invoice]:
        statement = select(Invoice).where(Invoice.period_start == period_start)
        return {
            invoice.account_id: invoice
            for invoice in (await self.session.execute(statement)).scalars()
        }

    async def first_open_months(self) -> dict[str, dt.datetime | None]:
        """Per account, the start of its latest finalized month (None if none yet)."""
        statement = (
            select(Account.id, func.max(Invoice.period_start))
            .outerjoin(
                Invoice,
                (Invoice.account_id == Account.id) & (Invoice.status == InvoiceStatus.FINALIZED),
            )
            .group_by(Account.id)
        )
        return {
            account_id: latest for account_id, latest in (await self.session.execute(statement))
        }

    async def plan_history(self, account_ids: Iterable[str]) -> dict[str, list[AccountPlan]]:
        history: dict[str, list[AccountPlan]] = {}
        ids = list(account_ids)
        for chunk in _chunks(ids):
            statement = (
                select(AccountPlan)
                .where(AccountPlan.account_id.in_(chunk))
                .order_by(AccountPlan.account_id, AccountPlan.effective_from)
            )
            for row in (await self.session.execute(statement)).scalars():
                history.setdefault(row.account_id, []).append(row)
        return history

    async def usable_credits(
        self, account_ids: Iterable[str], period_start: dt.datetime, period_end: dt.datetime
    ) -> dict[str, list[Credit]]:
        """Credits granted before the period ended that have not expired by its start and
        still hold money, soonest expiry first (never-expiring last), then oldest first."""
        credits: dict[str, list[Credit]] = {}
        for chunk in _chunks(list(account_ids)):
            statement = (
                select(Credit)
                .where(
                    Credit.account_id.in_(chunk),
                    Credit.created_at < period_end,
                    or_(Credit.expires_at.is_(None), Credit.expires_at > period_start),
                )
                .order_by(Credit.account_id, Credit.created_at, Credit.id)
            )
            for credit in (await self.session.execute(statement)).scalars():
                if credit.remaining > 0:
                    credits.setdefault(credit.account_id, []).append(credit)
        far = dt.datetime.max.replace(tzinfo=dt.UTC)
        for account_credits in credits.values():
            account_credits.sort(key=lambda c: (c.expires_at or far, c.created_at, c.id))
        return credits

    async def usage_by_account(
        self,
        period_start: dt.datetime,
        account_ids: Sequence[str] | None = None,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> dict[str, Usage]:
        """The usage of the month starting at ``period_start`` (narrowed to ``since <=
        hour_start < until`` for part of a month) summed per account, namespace and kind, in
        one grouped query. On the whole month the covering index ``ix_usage_records_rating``
        serves it in group order: only that month's entries are read, no table row, no sort."""
        statement = (
            select(
                UsageRecord.account_id,
                UsageRecord.namespace_id,
                UsageRecord.kind,
                func.sum(UsageRecord.quantity),
            )
            .where(UsageRecord.period_start == period_start)
            .group_by(UsageRecord.account_id, UsageRecord.namespace_id, UsageRecord.kind)
        )
        if since is not None:
            statement = statement.where(UsageRecord.hour_start >= since)
        if until is not None:
            statement = statement.where(UsageRecord.hour_start < until)
        if account_ids is not None:
            statement = statement.where(UsageRecord.account_id.in_(account_ids))
        usage: dict[str, Usage] = {}
        for account_id, namespace_id, kind, quantity in await self.session.execute(statement):
            usage.setdefault(account_id, {})[(namespace_id, kind)] = int(quantity)
        return usage

    async def replace_draft_lines(
        self, drafts: Sequence[tuple[Invoice, list[dict[str, Any]]]]
    ) -> None:
        """Swap drafts' lines for freshly rated ones: a few bulk statements for many invoices (a
        month of 10,000 namespaces has 100,000 usage lines), in Core, without the ORM's per-row
        bookkeeping (lines are never loaded as objects here). Only ever called on drafts, once
        they are flushed."""
        assert all(invoice.status is InvoiceStatus.DRAFT for invoice, _ in drafts)
        connection = await self.session.connection()
        for chunk in _chunks([invoice.id for invoice, _ in drafts]):
            await connection.execute(delete(InvoiceLine).where(InvoiceLine.invoice_id.in_(chunk)))
        rows = [{**line, "invoice_id": invoice.id} for invoice, lines in drafts for line in lines]
        if rows:
            await connection.execute(insert(InvoiceLine), rows)


def _credit_notes_of(invoice_ids: Sequence[str]) -> Select[CreditNote]:
    return (
        select(CreditNote)
        .where(CreditNote.invoice_id.in_(invoice_ids))
        .order_by(CreditNote.created_at, CreditNote.id)
    )


def _by_invoice(
    invoice_ids: Sequence[str], notes: Iterable[CreditNote]
) -> dict[str, list[CreditNote]]:
    by_invoice: dict[str, list[CreditNote]] = {invoice_id: [] for invoice_id in invoice_ids}
    for note in notes:
        by_invoice[note.invoice_id].append(note)
    return by_invoice


def _chunks(ids: list[str], size: int = 500) -> Iterable[list[str]]:
    # Bounded IN lists: SQLite caps bound parameters per statement.
    for index in range(0, len(ids), size):
        yield ids[index : index + size]
