"""``stratus operation``: async operations."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli._context import Context
from controlplane.cli._options import LimitOption, PageSizeOption
from controlplane.states import OperationState

app = typer.Typer(no_args_is_help=True, help="Async operations.")


@app.command("get")
def operation_get(ctx: typer.Context, operation_id: str) -> None:
    c = Context.of(ctx)
    operation = c.call(lambda client: client.get_operation(operation_id))
    c.emit(operation, f"{operation.id}\t{operation.operation_type}\t{operation.state}")


@app.command("list")
def operation_list(
    ctx: typer.Context,
    state: Annotated[
        OperationState | None, typer.Option(help="Only operations in this state")
    ] = None,
    operation_type: Annotated[
        str | None, typer.Option("--type", help="Only this type, e.g. namespace.create")
    ] = None,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """Async operations, newest first (every page unless --limit)."""
    c = Context.of(ctx)
    operations = c.call(
        lambda client: list(
            client.iter_operations(
                state=state.value if state else None,
                operation_type=operation_type,
                page_size=page_size,
                limit=limit,
            )
        )
    )
    lines = [f"{op.id}\t{op.operation_type}\t{op.state}\t{op.resource_id}" for op in operations]
    c.emit_rows("operations", operations, "\n".join(lines) or "no operations")
