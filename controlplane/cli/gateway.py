"""``stratus gateway``: registered gateways (operator)."""

from __future__ import annotations

import typer

from controlplane.cli._context import Context
from controlplane.cli._options import LimitOption, PageSizeOption

app = typer.Typer(no_args_is_help=True, help="Registered gateways (operator).")


@app.command("list")
def gateway_list(
    ctx: typer.Context, page_size: PageSizeOption = 100, limit: LimitOption = None
) -> None:
    """Registered gateways: a namespace becomes ACTIVE only once every one serves it."""
    c = Context.of(ctx)
    listed = c.call(lambda client: list(client.iter_gateways(page_size=page_size, limit=limit)))
    rows = [
        f"{g.id}\tversion {g.applied_version}\tlast seen {g.last_seen_at.isoformat()}"
        + (f"\tnot serving {','.join(g.rejected)}" if g.rejected else "")
        for g in listed
    ]
    c.emit_rows("gateways", listed, "\n".join(rows) or "no gateway registered")


@app.command("deregister")
def gateway_deregister(ctx: typer.Context, gateway_id: str) -> None:
    """Stop waiting for a gateway that is gone for good (it registers again if it polls)."""
    c = Context.of(ctx)
    c.call(lambda client: client.deregister_gateway(gateway_id))
    c.emit({"deregistered": gateway_id}, f"gateway {gateway_id} deregistered")
