"""``stratus service-account``: account-wide and namespace-scoped service accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from auth import AccountRole
from controlplane.cli._context import Context, fail
from controlplane.cli._options import (
    LimitOption,
    NamespaceOption,
    PageSizeOption,
    PermissionChoice,
    PermissionOption,
)

if TYPE_CHECKING:
    from controlplane.service_accounts.schemas import ServiceAccountOut

app = typer.Typer(
    no_args_is_help=True, help="Service accounts: account-wide or scoped to one namespace."
)


def _service_account_line(sa: ServiceAccountOut) -> str:
    if sa.namespace_scope is not None:
        scope = f"{sa.namespace_scope.namespace_id}={sa.namespace_scope.permission}"
    else:
        scope = f"account:{sa.account_role}"
        grants = ",".join(f"{g.namespace_id}={g.permission}" for g in sa.namespace_permissions)
        scope += f"\t{grants}" if grants else ""
    return f"{sa.id}\t{sa.name}\t{scope}"


@app.command("create")
def service_account_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Unique name in the account")],
    account_role: Annotated[AccountRole, typer.Option(help="Account role (not owner)")],
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Create an account-wide service account."""
    c = Context.of(ctx)
    sa = c.call(
        lambda client: client.create_service_account(
            name, description=description, account_role=account_role.value
        )
    )
    c.emit(sa, f"service account {sa.name} created: {sa.id}")


@app.command("create-scoped")
def service_account_create_scoped(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Unique name in the account")],
    namespace_id: NamespaceOption,
    permission: Annotated[PermissionChoice, typer.Option(help="admin, write or read")],
    description: Annotated[str, typer.Option()] = "",
) -> None:
    """Create a service account scoped to one namespace."""
    c = Context.of(ctx)
    if permission is PermissionChoice.none:
        fail("--permission must be admin, write or read")
    sa = c.call(
        lambda client: client.create_service_account(
            name,
            description=description,
            namespace_id=namespace_id,
            namespace_permission=permission.value,
        )
    )
    c.emit(sa, f"service account {sa.name} created: {sa.id}")


@app.command("list")
def service_account_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Only names starting with this")] = None,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """Service accounts, by name (every page unless --limit)."""
    c = Context.of(ctx)
    service_accounts = c.call(
        lambda client: list(
            client.iter_service_accounts(name=name, page_size=page_size, limit=limit)
        )
    )
    lines = [_service_account_line(sa) for sa in service_accounts]
    c.emit_rows("service_accounts", service_accounts, "\n".join(lines) or "no service accounts")


@app.command("set-namespace-permission")
def service_account_set_namespace_permission(
    ctx: typer.Context,
    service_account_id: str,
    namespace_id: NamespaceOption,
    permission: PermissionOption,
) -> None:
    """Grant an account-wide service account a permission on one namespace (on top of its
    account role), or remove the grant."""
    c = Context.of(ctx)
    sa = c.call(
        lambda client: client.set_service_account_namespace_access(
            namespace_id, service_account_id, permission.granted
        )
    )
    c.emit(sa, _service_account_line(sa))


@app.command("delete")
def service_account_delete(ctx: typer.Context, service_account_id: str) -> None:
    """Remove a service account and its API keys."""
    c = Context.of(ctx)
    c.call(lambda client: client.delete_service_account(service_account_id))
    c.emit({"deleted": service_account_id}, f"deleted service account {service_account_id}")
