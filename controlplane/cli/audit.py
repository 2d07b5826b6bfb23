"""``stratus audit``: the account's audit log and its S3 sink."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context
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
    from controlplane.audit_sink.schemas import AuditLogSinkOut

app = typer.Typer(no_args_is_help=True, help="The account's audit log and its S3 sink.")


@app.command("list")
def audit_list(
    ctx: typer.Context,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor, e.g. user:a@b.example")
    ] = None,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. user.invite")] = None,
    since: Annotated[
        dt.datetime | None, typer.Option(help="Only events at or after this time (UTC if no zone)")
    ] = None,
    until: Annotated[
        dt.datetime | None, typer.Option(help="Only events before this time (UTC if no zone)")
    ] = None,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """Every mutation in the account, newest first (every page unless --limit)."""
    c = Context.of(ctx)
    events = c.call(
        lambda client: list(
            client.iter_audit_logs(
                actor=actor,
                action=action,
                since=since,
                until=until,
                page_size=page_size,
                limit=limit,
            )
        )
    )
    lines = [f"{e.at.isoformat()}\t{e.actor}\t{e.action}\t{e.target}\t{e.outcome}" for e in events]
    c.emit_rows("audit_logs", events, "\n".join(lines) or "no audit events")


sink_app = typer.Typer(
    no_args_is_help=True, help="Where the audit log is exported (S3, one JSON Lines per hour)."
)
app.add_typer(sink_app, name="sink")


def _sink_text(sink: AuditLogSinkOut) -> str:
    through = sink.exported_through or "nothing yet"
    error = sink_error_text(sink)
    return (
        sink_target_text(sink)
        + f"\nevents exported from {sink.export_from} through the hour of {through}"
        f" (last success {sink.last_success_at or 'never'}, lag {sink.lag_seconds}s){error}"
    )


@sink_app.command("get")
def audit_sink_get(ctx: typer.Context) -> None:
    """The sink and its health: last hour exported, last success, last error, lag."""
    c = Context.of(ctx)
    sink = c.call(lambda client: client.get_audit_log_sink())
    c.emit(sink, _sink_text(sink))


@sink_app.command("set")
def audit_sink_set(
    ctx: typer.Context,
    bucket: SinkBucketOption,
    access_key_id: SinkAccessKeyIdOption,
    secret_access_key: SinkSecretOption,
    prefix: SinkPrefixOption = "",
    region: SinkRegionOption = "us-east-1",
    endpoint_url: SinkEndpointOption = None,
    export_from: Annotated[
        dt.datetime | None, typer.Option(help="First UTC hour to export (default: this hour)")
    ] = None,
) -> None:
    """Create or replace the account's audit log sink."""
    from controlplane.audit_sink.schemas import AuditLogSinkSet

    c = Context.of(ctx)
    body = AuditLogSinkSet(
        bucket=bucket,
        prefix=prefix,
        region=region,
        endpoint_url=endpoint_url,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        export_from=export_from,
    )
    sink = c.call(lambda client: client.set_audit_log_sink(body))
    c.emit(sink, _sink_text(sink))


@sink_app.command("delete")
def audit_sink_delete(ctx: typer.Context) -> None:
    c = Context.of(ctx)
    c.call(lambda client: client.delete_audit_log_sink())
    c.emit({"deleted": True}, "audit log sink deleted")
