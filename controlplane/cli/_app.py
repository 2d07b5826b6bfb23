"""The ``stratus`` root: global options, the top-level commands and one group per module.

Start-up stays cheap (``stratus --help`` well under 0.3 s of CPU; ``bench/cli_startup.py``):
importing ``controlplane.cli`` loads typer, the enums and little else. Every command module
follows the same pattern, and a new one (``serve.py``, ...) must too:

- At module level, import only typer, the standard library, ``controlplane.cli._*`` helpers
  other than ``_session_store``, and what the commands' parameter annotations name (enums such
  as ``auth.AccountRole``, ``controlplane.quotas.limits.Quota``); typer evaluates those when the
  app is built.
- Import everything else inside the command that uses it: the typed client, the schemas,
  ``httpx``, ``pydantic``, ``cryptography`` (``certs``, ``namespace accepted-client-ca``), and
  whatever runs a process (``up`` imports the supervisor and the settings when it runs).
  Names only needed by annotations go under ``if TYPE_CHECKING:``.
- The schemas and the client import no ORM: shared states live in ``controlplane/states.py``,
  quota limits in ``controlplane/quotas/limits.py``.

``pyproject.toml``'s import-linter contract forbids ``sqlalchemy``, ``controlplane.models``,
``fastapi``, ``temporalio``, ``grpc`` and ``boto3`` to ``controlplane.cli`` and
``controlplane.client``; a command's deliberate in-function import of such a module (``up``'s
supervisor) is listed in its ``ignore_imports``. ``tests/controlplane/test_cli_startup.py``
checks what ``--help`` actually loads.
"""

from __future__ import annotations

import sys

import typer

from controlplane.cli import (
    account,
    apikey,
    apply,
    audit,
    backup,
    billing,
    cell,
    certs,
    console,
    gateway,
    group,
    group_claims,
    insights,
    invoice,
    login,
    metrics,
    namespace,
    namespace_spec,
    operation,
    scim_token,
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
app.command()(serve.bootstrap)
app.command()(backup.backup)
app.command()(login.login)
app.command()(login.logout)
app.command()(console.console)
app.command()(apply.apply)
app.command()(apply.export)
app.add_typer(account.app, name="account")
app.add_typer(namespace.app, name="namespace")
namespace.app.add_typer(namespace_spec.tag_app, name="tag")
namespace.app.add_typer(namespace_spec.search_attribute_app, name="search-attribute")
namespace.app.add_typer(namespace_spec.codec_server_app, name="codec-server")
namespace.app.add_typer(namespace_spec.delete_protection_app, name="delete-protection")
app.add_typer(certs.app, name="certs")
app.add_typer(operation.app, name="operation")
app.add_typer(gateway.app, name="gateway")
app.add_typer(cell.app, name="cell")
app.command()(insights.insights)
app.command()(metrics.metrics)
app.add_typer(usage.app, name="usage")
app.add_typer(invoice.app, name="invoice")
app.add_typer(billing.app, name="billing")
app.add_typer(user.app, name="user")
app.add_typer(group.app, name="group")
app.add_typer(service_account.app, name="service-account")
app.add_typer(apikey.app, name="apikey")
app.add_typer(scim_token.app, name="scim-token")
app.add_typer(audit.app, name="audit")
app.add_typer(group_claims.app, name="group-claims")
accept_global_options(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
