"""``stratus audit``: the account's audit log and its S3 sink."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from controlplane.cli._context import Context
from controlplane.cli._options import LimitOption, PageSizeOption

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
