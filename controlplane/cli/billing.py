"""``stratus billing``: plans, credits and the export sink of an account."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context, fail
from controlplane.cli._options import (
    LimitOption,
    PageSizeOption,
    SinkAccessKeyIdOption,
    SinkBucketOption,
    SinkEndpointOption,
    SinkPrefixOption,
    SinkRegionOption,
    SinkSecretOption,
    sink_error_text,
    sink_target_text,
)

if TYPE_CHECKING:
    from controlplane.exports.schemas import ExportSinkOut

app = typer.Typer(no_args_is_help=True, help="Plans, credits and the export sink of your account.")
export_sink_app = typer.Typer(
    no_args_is_help=True, help="Where usage (hourly) and finalized invoices are exported (S3)."
)
app.add_typer(export_sink_app, name="export-sink")


def _parse_day(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        fail(f"{option} must be a date as YYYY-MM-DD, got {value!r}", code=2)


@app.command("plan")
def billing_plan(ctx: typer.Context) -> None:
    """The account's plan today and its plan changes."""
    c = Context.of(ctx)
    plan = c.call(lambda client: client.get_plan())
    history = [f"  from {p.effective_from}: {p.plan}" for p in plan.history]
    default = " (default)" if plan.is_default else ""
    c.emit(plan, "\n".join([f"plan {plan.plan}{default}", *history]))


@app.command("set-plan")
def billing_set_plan(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="Account id")],
    plan: Annotated[str, typer.Option(help="Plan of the price book")],
    effective_from: Annotated[
        str | None, typer.Option(help="First UTC day on the plan, YYYY-MM-DD (default today)")
    ] = None,
) -> None:
    """Operator: put an account on a plan."""
    c = Context.of(ctx)
    day = _parse_day(effective_from, "--effective-from") if effective_from else None
    result = c.call(lambda client: client.set_account_plan(account, plan, effective_from=day))
    c.emit(result, f"account {account}: plan {result.plan}")


@app.command("credits")
def billing_credits(
    ctx: typer.Context, page_size: PageSizeOption = 100, limit: LimitOption = None
) -> None:
    """The account's prepaid credits, oldest first (every page unless --limit)."""
    c = Context.of(ctx)
    credits = c.call(lambda client: list(client.iter_credits(page_size=page_size, limit=limit)))
    lines = [
        f"{credit.id}\t{credit.remaining}/{credit.amount}\t"
        f"{credit.expires_at.date() if credit.expires_at else 'no expiry'}\t{credit.description}"
        for credit in credits
    ]
    c.emit_rows("credits", credits, "\n".join(lines) or "no credits")


@app.command("grant-credit")
def billing_grant_credit(
    ctx: typer.Context,
    account: Annotated[str, typer.Option("--account", help="Account id")],
    amount: Annotated[str, typer.Option(help="Decimal amount, e.g. 250.00")],
    description: Annotated[str, typer.Option(help="Shown on invoices")],
    expires_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: never)")] = None,
) -> None:
    """Operator: grant an account a prepaid credit."""
    c = Context.of(ctx)
    day = _parse_day(expires_on, "--expires-on") if expires_on else None
    credit = c.call(
        lambda client: client.grant_credit(
            account, amount=amount, description=description, expires_on=day
        )
    )
    c.emit(credit, f"credit {credit.id}: {credit.amount} for account {credit.account_id}")


def _sink_text(sink: ExportSinkOut) -> str:
    through = sink.usage_exported_through or "nothing yet"
    error = sink_error_text(sink)
    return (
        sink_target_text(sink)
        + f"\nusage exported from {sink.export_from} through {through}{error}"
    )


@export_sink_app.command("get")
def export_sink_get(ctx: typer.Context) -> None:
    c = Context.of(ctx)
    sink = c.call(lambda client: client.get_export_sink())
    c.emit(sink, _sink_text(sink))


@export_sink_app.command("set")
def export_sink_set(
    ctx: typer.Context,
    bucket: SinkBucketOption,
    access_key_id: SinkAccessKeyIdOption,
    secret_access_key: SinkSecretOption,
    prefix: SinkPrefixOption = "",
    region: SinkRegionOption = "us-east-1",
    endpoint_url: SinkEndpointOption = None,
    export_from: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default today)")] = None,
) -> None:
    """Create or replace the account's export sink."""
    from controlplane.exports.schemas import ExportSinkSet

    c = Context.of(ctx)
    body = ExportSinkSet(
        bucket=bucket,
        prefix=prefix,
        region=region,
        endpoint_url=endpoint_url,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        export_from=_parse_day(export_from, "--export-from") if export_from else None,
    )
    sink = c.call(lambda client: client.set_export_sink(body))
    c.emit(sink, _sink_text(sink))


@export_sink_app.command("delete")
def export_sink_delete(ctx: typer.Context) -> None:
    c = Context.of(ctx)
    c.call(lambda client: client.delete_export_sink())
    c.emit({"deleted": True}, "export sink deleted")
