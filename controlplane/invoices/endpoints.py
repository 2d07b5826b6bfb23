"""Invoice API: the account's monthly invoices (owners and finance admins); credit notes
(operator)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from auth import Action, Principal
from controlplane.api.deps import requires
from controlplane.invoices import service
from controlplane.invoices.schemas import (
    CreditNoteCreate,
    CreditNoteOut,
    InvoiceList,
    InvoiceOut,
)
from controlplane.kit.deps import SessionDep
from controlplane.kit.paging import PageDep
from controlplane.kit.routing import ApiRoute

router = APIRouter(route_class=ApiRoute, prefix="/invoices", tags=["invoices"])
Problems: dict[int | str, dict[str, Any]] = {400: {}, 401: {}, 403: {}, 404: {}, 409: {}}


@router.get("", response_model=InvoiceList, responses=Problems)
async def list_invoices(
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.INVOICE_READ))],
    page: PageDep,
    status: Annotated[str | None, Query(description="DRAFT or FINALIZED")] = None,
    month: Annotated[str | None, Query(description="Only this month's invoice, YYYY-MM")] = None,
) -> InvoiceList:
    """The account's invoices, newest month first (the current month is a draft), a page
    at a time."""
    invoices, next_token = await service.page_invoices(
        session, principal, page, status=status, month=month
    )
    return InvoiceList(invoices=invoices, next_page_token=next_token)


@router.get("/{invoice_id}", response_model=InvoiceOut, responses=Problems)
async def get_invoice(
    invoice_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.INVOICE_READ))],
) -> InvoiceOut:
    """One invoice with its charges, per-namespace usage, credits and credit notes."""
    return await service.get_invoice(session, principal, invoice_id)


@router.get(
    "/{invoice_id}/download",
    responses={**Problems, 200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def download_invoice(
    invoice_id: str,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.INVOICE_READ))],
    file_format: Annotated[str, Query(alias="format", description="json or csv")] = "json",
) -> Response:
    """The invoice as a file: JSON (as ``GET /invoices/{id}``) or FOCUS-style CSV."""
    body, media_type, name = await service.download(
        session, principal, invoice_id, file_format=file_format
    )
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post(
    "/{invoice_id}/credit-notes", status_code=201, response_model=CreditNoteOut, responses=Problems
)
async def create_credit_note(
    invoice_id: str,
    body: CreditNoteCreate,
    session: SessionDep,
    principal: Annotated[Principal, Depends(requires(Action.CREDIT_NOTE_CREATE))],
) -> CreditNoteOut:
    """Operator only: lower what is due on a finalized invoice (which itself never changes)."""
    note = await service.create_credit_note(
        session, principal, invoice_id, amount=body.amount, reason=body.reason
    )
    return CreditNoteOut(
        id=note.id,
        invoice_id=note.invoice_id,
        amount=note.amount,
        reason=note.reason,
        created_at=note.created_at,
    )
