"""``stratus usage``: metered usage of your account."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli._context import Context

app = typer.Typer(no_args_is_help=True, help="Usage of your account (owner, finance admin).")


@app.command("get")
def usage_get(
    ctx: typer.Context,
    start: Annotated[str, typer.Option(help="First UTC day, YYYY-MM-DD (inclusive)")],
    end: Annotated[str, typer.Option(help="Last UTC day, YYYY-MM-DD (inclusive, at most 90 days)")],
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Only this namespace id (name.account)")
    ] = None,
) -> None:
    """Usage per namespace, UTC day and billable kind."""
    c = Context.of(ctx)
    usage = c.call(lambda client: client.get_usage(start, end, namespace_id=namespace))
    if not usage.usage:
        c.emit(usage, f"no usage from {usage.start} to {usage.end}")
        return
    lines = ["DATE (UTC)\tNAMESPACE\tKIND\tQUANTITY\tUNIT"]
    lines += [
        f"{u.date}\t{u.namespace_id}\t{u.kind}\t{u.quantity}\t{_unit(u.kind)}" for u in usage.usage
    ]
    c.emit(usage, "\n".join(lines))


def _unit(kind: str) -> str:
    """Storage is metered in byte-hours, everything else in actions (docs/billing.md)."""
    return "byte-hours" if kind.startswith("storage.") else "actions"
