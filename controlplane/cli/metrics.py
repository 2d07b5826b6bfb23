"""``stratus metrics``: the tenant metrics endpoint's OpenMetrics text."""

from __future__ import annotations

from typing import Annotated

import typer

from controlplane.cli._context import Context


def metrics(
    ctx: typer.Context,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Only this namespace id (name.account)")
    ] = None,
) -> None:
    """Print the OpenMetrics text Prometheus scrapes at /api/v1/metrics: the namespaces your
    key may read (docs/teams.md)."""
    c = Context.of(ctx)
    text = c.call(lambda client: client.get_metrics(namespace_id=namespace))
    typer.echo(text, nl=False)
