"""The ``stratus`` root: global options, the top-level commands and one group per module."""

from __future__ import annotations

import sys

import typer

from controlplane.cli import (
    account,
    apikey,
    billing,
    certs,
    gateway,
    invoice,
    login,
    namespace,
    operation,
    serve,
    service_account,
    up,
    usage,
    user,
)
from controlplane.cli._context import accept_global_options, global_options

app = typer.Typer(
    no_args_is_help=True,
    help="Stratus: Temporal workflows as a service. The global options (--api-url, --api-key, "
    "--output) go before or after the command.",
    # Plain help: the rich one labels flags <bool>.
    rich_markup_mode=None,
)
app.callback()(global_options)

app.command()(up.up)
app.command()(serve.serve)
app.command()(serve.migrate)
app.command()(login.login)
app.command()(login.logout)
app.add_typer(account.app, name="account")
app.add_typer(namespace.app, name="namespace")
app.add_typer(certs.app, name="certs")
app.add_typer(operation.app, name="operation")
app.add_typer(gateway.app, name="gateway")
app.add_typer(usage.app, name="usage")
app.add_typer(invoice.app, name="invoice")
app.add_typer(billing.app, name="billing")
app.add_typer(user.app, name="user")
app.add_typer(service_account.app, name="service-account")
app.add_typer(apikey.app, name="apikey")
accept_global_options(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
