"""``stratus operation``: async operations."""

from __future__ import annotations

import typer

from controlplane.cli._context import Context

app = typer.Typer(no_args_is_help=True, help="Async operations.")


@app.command("get")
def operation_get(ctx: typer.Context, operation_id: str) -> None:
    c = Context.of(ctx)
    operation = c.call(lambda client: client.get_operation(operation_id))
    c.emit(operation, f"{operation.id}\t{operation.operation_type}\t{operation.state}")
