"""``stratus console``: print a one-time link that signs you into the web console."""

from __future__ import annotations

import typer

from controlplane.cli._context import Context


def console(ctx: typer.Context) -> None:
    """Print a link that signs the user of your API key (--api-key, STRATUS_API_KEY or the
    saved key) into the web console: once, within five minutes. With the operator key
    (<data-dir>/operator.key), the link signs the operator in."""
    c = Context.of(ctx)
    link = c.call(lambda client: client.create_console_link())
    c.emit(
        link,
        f"Open this link to sign in to the console (once, until "
        f"{link.expires_at:%H:%M:%S} UTC):\n{link.url}",
    )
