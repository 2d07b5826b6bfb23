"""``stratus user``: users of your account, their roles and namespace permissions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from auth import AccountRole
from controlplane.cli._context import Context, fail
from controlplane.cli._options import (
    LimitOption,
    NamespaceOption,
    PageSizeOption,
    PermissionOption,
)

if TYPE_CHECKING:
    from controlplane.client import StratusClient
    from controlplane.users.schemas import UserOut

app = typer.Typer(no_args_is_help=True, help="Users of your account and their roles.")

UserArgument = Annotated[str, typer.Argument(help="The user's id or email")]


def _resolve_user(client: StratusClient, user: str) -> UserOut:
    if "@" not in user:
        return client.get_user(user)
    email = user.strip().lower()
    for candidate in client.iter_users():
        if candidate.email == email:
            return candidate
    fail(f"no user with email {email} in this account")


def _user_line(user: UserOut) -> str:
    permissions = ",".join(f"{p.namespace_id}={p.permission}" for p in user.namespace_permissions)
    return f"{user.id}\t{user.email}\t{user.account_role}\t{permissions or '-'}"


@app.command("invite")
def user_invite(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(help="The user's email (matched at sign-in)")],
    account_role: Annotated[AccountRole, typer.Option(help="Account role")],
) -> None:
    """Invite a user to your account with an account role."""
    c = Context.of(ctx)
    user = c.call(lambda client: client.invite_user(email, account_role.value))
    c.emit(user, f"invited {user.email} as {user.account_role} (user {user.id})")


@app.command("list")
def user_list(
    ctx: typer.Context,
    email: Annotated[str | None, typer.Option(help="Only the user with this email")] = None,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """Users: id, email, account role, namespace permissions (every page unless --limit)."""
    c = Context.of(ctx)
    users = c.call(
        lambda client: list(client.iter_users(email=email, page_size=page_size, limit=limit))
    )
    c.emit_rows("users", users, "\n".join(_user_line(user) for user in users) or "no users")


@app.command("set-account-role")
def user_set_account_role(
    ctx: typer.Context,
    user: UserArgument,
    account_role: Annotated[AccountRole, typer.Option(help="New account role")],
) -> None:
    """Change a user's account role (the last owner cannot be demoted)."""
    c = Context.of(ctx)
    with c.connected() as client:
        current = _resolve_user(client, user)
        updated = client.update_user(
            current.id,
            resource_version=current.resource_version,
            account_role=account_role.value,
        )
    c.emit(updated, f"{updated.email}: {updated.account_role}")


@app.command("set-namespace-permissions")
def user_set_namespace_permissions(
    ctx: typer.Context,
    user: UserArgument,
    namespace_id: NamespaceOption,
    permission: PermissionOption,
) -> None:
    """Set a user's permission on one namespace."""
    c = Context.of(ctx)
    updated = c.call(
        lambda client: client.set_namespace_access(
            namespace_id, _resolve_user(client, user).id, permission.granted
        )
    )
    c.emit(updated, _user_line(updated))


@app.command("resend-invitation")
def user_resend_invitation(ctx: typer.Context, user: UserArgument) -> None:
    """Resend a pending invitation: it expires anew, counted from now."""
    c = Context.of(ctx)
    updated = c.call(lambda client: client.resend_invitation(_resolve_user(client, user).id))
    expires = updated.invitation_expires_at
    c.emit(
        updated,
        f"invitation of {updated.email} resent; it expires at "
        f"{expires.isoformat() if expires else 'never'}",
    )


@app.command("delete")
def user_delete(ctx: typer.Context, user: UserArgument) -> None:
    """Remove a user with their API keys and namespace permissions."""
    c = Context.of(ctx)
    with c.connected() as client:
        target = _resolve_user(client, user)
        client.delete_user(target.id)
    c.emit({"deleted": target.id}, f"deleted user {target.email}")
