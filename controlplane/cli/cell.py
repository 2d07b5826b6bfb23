"""``stratus cell``: the Temporal clusters namespaces are placed on (operator)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context, fail
from controlplane.cli._options import LimitOption, PageSizeOption
from controlplane.states import CellPlacement, CellState

if TYPE_CHECKING:
    from controlplane.cells.schemas import CellOut

app = typer.Typer(no_args_is_help=True, help="Cells: Temporal clusters (operator).")

PemFile = Annotated[
    Path | None, typer.Option(exists=True, dir_okay=False, readable=True, resolve_path=True)
]


def _line(cell: CellOut) -> str:
    capacity = "∞" if cell.max_namespaces is None else str(cell.max_namespaces)
    health = cell.health.state.value + (f" ({cell.health.reason})" if cell.health.reason else "")
    return (
        f"{cell.id}\t{cell.provider}\t{cell.frontend}\t{cell.placement.value}\t"
        f"{cell.state.value}\t{cell.namespace_count}/{capacity}\t{health}\t"
        f"{cell.server_version or '-'}"
    )


def _read(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read {path}: {error}")


@app.command("register")
def cell_register(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="The cell's name: lowercase letters, digits, '-'")],
    frontend: Annotated[str, typer.Option(help="HOST:PORT of the Temporal frontend")],
    max_namespaces: Annotated[int, typer.Option(help="Most namespaces placed on the cell")],
    tls_ca: PemFile = None,
    tls_cert: PemFile = None,
    tls_key: PemFile = None,
    server_name: Annotated[
        str | None, typer.Option(help="Name the frontend's certificate carries")
    ] = None,
    metrics_url: Annotated[
        str | None, typer.Option(help="Prometheus URL of the cluster's metrics")
    ] = None,
    placement: Annotated[
        CellPlacement, typer.Option(help="dedicated (one account) or shared (many)")
    ] = CellPlacement.DEDICATED,
) -> None:
    """Register a Temporal cluster as an external cell; its frontend must answer first."""
    from controlplane.cells.schemas import CellRegister

    c = Context.of(ctx)
    body = CellRegister(
        name=name,
        frontend=frontend,
        tls_ca=_read(tls_ca),
        tls_cert=_read(tls_cert),
        tls_key=_read(tls_key),
        server_name=server_name,
        metrics_url=metrics_url,
        max_namespaces=max_namespaces,
        placement=placement,
    )
    cell = c.call(lambda client: client.register_cell(body))
    c.emit(cell, f"cell {cell.id} registered (Temporal {cell.server_version or 'unknown'})")


@app.command("list")
def cell_list(
    ctx: typer.Context,
    state: Annotated[CellState | None, typer.Option(help="Only cells in this state")] = None,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """Every cell: provider, frontend, placement, state, namespaces/capacity, health."""
    c = Context.of(ctx)
    listed = c.call(
        lambda client: list(
            client.iter_cells(
                state=state.value if state else None, page_size=page_size, limit=limit
            )
        )
    )
    c.emit_rows("cells", listed, "\n".join(_line(cell) for cell in listed) or "no cell")


@app.command("get")
def cell_get(ctx: typer.Context, cell_id: str) -> None:
    """One cell and the namespaces on it."""
    c = Context.of(ctx)
    cell = c.call(lambda client: client.get_cell(cell_id))
    names = [f"  {n.namespace_id}\t{n.account_id}" for n in cell.namespaces or []]
    c.emit(cell, "\n".join([_line(cell), *names]))


@app.command("drain")
def cell_drain(
    ctx: typer.Context,
    cell_id: str,
    undo: Annotated[bool, typer.Option("--undo", help="Take new namespaces again")] = False,
) -> None:
    """Place no new namespaces on the cell (those on it keep running); --undo reverts."""
    c = Context.of(ctx)
    cell = c.call(
        lambda client: client.undrain_cell(cell_id) if undo else client.drain_cell(cell_id)
    )
    c.emit(cell, f"cell {cell.id} is {cell.state.value}")


@app.command("deregister")
def cell_deregister(ctx: typer.Context, cell_id: str) -> None:
    """Forget a registered cell (refused while namespaces live on it)."""
    c = Context.of(ctx)
    c.call(lambda client: client.deregister_cell(cell_id))
    c.emit({"deregistered": cell_id}, f"cell {cell_id} deregistered")
