"""Operator pages: accounts (list with plan and namespaces; create), an account (plan change,
credits granted and listed, its namespaces), plans and their prices, a namespace's rate limits.

Only the operator sees them: any other viewer gets the one "not found" page. Every read and
write goes through the same services as the API's operator routes (same checks, same audit).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import RedirectResponse

from controlplane.accounts import service as accounts
from controlplane.api.deps import StarterDep
from controlplane.billing_account import service as billing_account
from controlplane.console._session import CurrentViewer, Viewer
from controlplane.console._templates import render
from controlplane.kit.deps import PricingDep, SessionDep
from controlplane.kit.errors import InvalidField, NotFound, StratusError
from controlplane.namespaces import service as namespaces
from controlplane.pricing import Pricing

router = APIRouter(include_in_schema=False, prefix="/operator")


async def _operator(viewer: CurrentViewer) -> Viewer:
    # A tenant learns nothing here, not even that these pages exist.
    if not viewer.is_operator:
        raise NotFound("not found")
    return viewer


OperatorViewer = Annotated[Viewer, Depends(_operator)]


def _refused_or_shown(error: StratusError) -> StratusError:
    """Errors the form shows next to its fields; the policy's refusals and unknown ids are
    the error page's."""
    if error.status in (401, 403, 404):
        raise error
    return error


async def _accounts_page(
    request: Request,
    session: SessionDep,
    viewer: Viewer,
    pricing: Pricing,
    *,
    values: dict[str, str],
    error: StratusError | None = None,
    created: dict[str, str] | None = None,
) -> Response:
    rows = await accounts.list_all(session, viewer.principal)
    plans = await billing_account.plans_of_accounts(
        session, viewer.principal, pricing, [account.id for account, _ in rows]
    )
    return render(
        request,
        "operator_accounts.html",
        status_code=error.status if error else 200,
        rows=rows,
        plans=plans,
        values=values,
        error=error,
        created=created,
    )


@router.get("/accounts")
async def account_list(
    request: Request, viewer: OperatorViewer, session: SessionDep, pricing: PricingDep
) -> Response:
    return await _accounts_page(
        request, session, viewer, pricing, values={"name": "", "owner_email": ""}
    )


@router.post("/accounts")
async def account_create(
    request: Request,
    viewer: OperatorViewer,
    session: SessionDep,
    pricing: PricingDep,
    name: Annotated[str, Form()] = "",
    owner_email: Annotated[str, Form()] = "",
) -> Response:
    """Create an account and its owner, as ``POST /api/v1/accounts``: the owner's API key is
    shown once, on this answer only."""
    values = {"name": name, "owner_email": owner_email}
    try:
        account, owner, _, token = await accounts.create(
            session, viewer.principal, name=name, owner_email=owner_email
        )
    except StratusError as refused:
        error = _refused_or_shown(refused)
        await session.rollback()
        return await _accounts_page(request, session, viewer, pricing, values=values, error=error)
    created = {"id": account.id, "name": account.name, "email": owner.email, "token": token}
    return await _accounts_page(
        request,
        session,
        viewer,
        pricing,
        values={"name": "", "owner_email": ""},
        created=created,
    )


async def _account_page(
    request: Request,
    session: SessionDep,
    viewer: Viewer,
    pricing: Pricing,
    account_id: str,
    *,
    error: StratusError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    account = await accounts.get(session, viewer.principal, account_id)
    plans = await billing_account.plans_of_accounts(
        session, viewer.principal, pricing, [account.id]
    )
    return render(
        request,
        "operator_account.html",
        status_code=error.status if error else 200,
        account=account,
        plan=plans[account.id],
        plan_names=sorted(pricing.book.plans),
        currency=pricing.book.currency,
        credits=await billing_account.credits_of(session, viewer.principal, account.id),
        namespaces=sorted(
            await namespaces.of_account(session, viewer.principal, account.id),
            key=lambda namespace: namespace.id,
        ),
        error=error,
        values=values or {"amount": "", "description": "", "expires_on": ""},
        today=dt.datetime.now(dt.UTC).date().isoformat(),
    )


@router.get("/accounts/{account_id}")
async def account_detail(
    request: Request,
    account_id: str,
    viewer: OperatorViewer,
    session: SessionDep,
    pricing: PricingDep,
) -> Response:
    return await _account_page(request, session, viewer, pricing, account_id)


def _day(value: str, field: str) -> dt.date | None:
    if not value.strip():
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidField(f"{field} must be a day (YYYY-MM-DD)", field=field) from None


@router.post("/accounts/{account_id}/plan")
async def account_plan_set(
    request: Request,
    account_id: str,
    viewer: OperatorViewer,
    session: SessionDep,
    pricing: PricingDep,
    plan: Annotated[str, Form()] = "",
    effective_from: Annotated[str, Form()] = "",
) -> Response:
    """Change the account's plan, as ``POST /api/v1/accounts/{id}/plan``."""
    try:
        await billing_account.set_plan(
            session,
            viewer.principal,
            pricing,
            account_id,
            plan=plan,
            effective_from=_day(effective_from, "effective_from"),
        )
    except StratusError as refused:
        error = _refused_or_shown(refused)
        await session.rollback()
        return await _account_page(request, session, viewer, pricing, account_id, error=error)
    return RedirectResponse(f"/operator/accounts/{account_id}", status_code=303)


@router.post("/accounts/{account_id}/credits")
async def account_credit_grant(
    request: Request,
    account_id: str,
    viewer: OperatorViewer,
    session: SessionDep,
    pricing: PricingDep,
    amount: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    expires_on: Annotated[str, Form()] = "",
) -> Response:
    """Grant a prepaid credit, as ``POST /api/v1/accounts/{id}/credits``."""
    values = {"amount": amount, "description": description, "expires_on": expires_on}
    try:
        await billing_account.grant_credit(
            session,
            viewer.principal,
            account_id,
            amount=amount.strip(),
            description=description,
            expires_on=_day(expires_on, "expires_on"),
        )
    except StratusError as refused:
        error = _refused_or_shown(refused)
        await session.rollback()
        return await _account_page(
            request, session, viewer, pricing, account_id, error=error, values=values
        )
    return RedirectResponse(f"/operator/accounts/{account_id}#credits", status_code=303)


@router.get("/plans")
async def plan_list(request: Request, viewer: OperatorViewer, pricing: PricingDep) -> Response:
    """The price book's plans and their prices (what ``stratus up`` and the API load)."""
    return render(
        request,
        "operator_plans.html",
        book=pricing.book,
        default_plan=pricing.default_plan,
        plans=[pricing.book.plans[name] for name in sorted(pricing.book.plans)],
    )


async def _namespace_page(
    request: Request,
    session: SessionDep,
    viewer: Viewer,
    namespace_id: str,
    *,
    error: StratusError | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    namespace = await namespaces.get_any(session, viewer.principal, namespace_id)
    return render(
        request,
        "operator_namespace.html",
        status_code=error.status if error else 200,
        namespace=namespace,
        values=values
        or {
            "requests_per_second": str(namespace.requests_per_second),
            "actions_per_second": str(namespace.actions_per_second),
        },
        error=error,
        min_limit=namespaces.MIN_RATE_LIMIT,
        max_limit=namespaces.MAX_RATE_LIMIT,
    )


@router.get("/namespaces/{namespace_id}")
async def namespace_detail(
    request: Request, namespace_id: str, viewer: OperatorViewer, session: SessionDep
) -> Response:
    return await _namespace_page(request, session, viewer, namespace_id)


def _whole(value: str, field: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise InvalidField(f"{field} must be a whole number", field=field) from None


@router.post("/namespaces/{namespace_id}/limits")
async def namespace_limits_set(
    request: Request,
    namespace_id: str,
    viewer: OperatorViewer,
    session: SessionDep,
    starter: StarterDep,
    requests_per_second: Annotated[str, Form()] = "",
    actions_per_second: Annotated[str, Form()] = "",
) -> Response:
    """Set the namespace's gateway rate limits, as ``POST /api/v1/namespaces/{id}/limits``."""
    values = {
        "requests_per_second": requests_per_second,
        "actions_per_second": actions_per_second,
    }
    try:
        await namespaces.set_limits(
            session,
            viewer.principal,
            starter,
            namespace_id=namespace_id,
            requests_per_second=_whole(requests_per_second, "requests_per_second"),
            actions_per_second=_whole(actions_per_second, "actions_per_second"),
            async_operation_id=None,
        )
    except StratusError as refused:
        error = _refused_or_shown(refused)
        await session.rollback()
        return await _namespace_page(
            request, session, viewer, namespace_id, error=error, values=values
        )
    return RedirectResponse(f"/operator/namespaces/{namespace_id}", status_code=303)
