"""``stratus group``: user groups of your account, their members, account role and namespace
permissions (a member holds the highest of its own and its groups')."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Annotated

import typer

from controlplane.cli._context import Context, fail
from controlplane.cli._options import (
    LimitOption,
    NamespaceOption,
    PageSizeOption,
    PermissionOption,
)

if TYPE_CHECKING:
    from controlplane.client import StratusClient
    from controlplane.groups.schemas import GroupOut

app = typer.Typer(no_args_is_help=True, help="User groups: shared roles and namespace access.")


class GroupRoleChoice(enum.StrEnum):
    """An account role a group may hold (never owner), or ``none``."""

    admin = "admin"
    developer = "developer"
    finance_admin = "finance_admin"
    read = "read"
    metrics_read = "metrics_read"
    none = "none"


GroupArgument = Annotated[str, typer.Argument(help="The group's id or name")]
UsersArgument = Annotated[list[str], typer.Argument(help="User ids or emails")]


def _resolve_group(client: StratusClient, group: str) -> GroupOut:
    """The group named ``group``, else the group with that id."""
    for candidate in client.iter_groups(name=group):
        if candidate.name == group:
            return candidate
    return client.get_group(group)


def _user_ids(client: StratusClient, users: list[str]) -> list[str]:
    """Emails resolved to user ids (ids pass as they are)."""
    ids = []
    for user in users:
        if "@" not in user:
            ids.append(user)
            continue
        email = user.strip().lower()
        found = client.list_users(email=email, page_size=1).users
        if not found:
            fail(f"no user with email {email} in this account")
        ids.append(found[0].id)
    return ids


def _group_line(group: GroupOut) -> str:
    permissions = ",".join(f"{p.namespace_id}={p.permission}" for p in group.namespace_permissions)
    return (
        f"{group.id}\t{group.name}\t{group.account_role or '-'}\t{group.member_count} members\t"
        f"{permissions or '-'}"
    )


@app.command("create")
def group_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="Unique in the account")],
    description: Annotated[str, typer.Option(help="What the group is for")] = "",
    account_role: Annotated[
        GroupRoleChoice,
        typer.Option(
            help="The account role its members hold (none: only its namespace permissions)"
        ),
    ] = GroupRoleChoice.none,
) -> None:
    """Create a user group."""
    c = Context.of(ctx)
    role = None if account_role is GroupRoleChoice.none else account_role.value
    group = c.call(
        lambda client: client.create_group(name, description=description, account_role=role)
    )
    c.emit(group, f"created group {group.name} (group {group.id})")


@app.command("list")
def group_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="Only groups whose name starts so")] = None,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """Groups: id, name, account role, members, namespace permissions (every page unless
    --limit)."""
    c = Context.of(ctx)
    groups = c.call(
        lambda client: list(client.iter_groups(name=name, page_size=page_size, limit=limit))
    )
    c.emit_rows("groups", groups, "\n".join(_group_line(g) for g in groups) or "no groups")


@app.command("get")
def group_get(ctx: typer.Context, group: GroupArgument) -> None:
    """Show one group."""
    c = Context.of(ctx)
    found = c.call(lambda client: _resolve_group(client, group))
    c.emit(found, _group_line(found))


@app.command("update")
def group_update(
    ctx: typer.Context,
    group: GroupArgument,
    name: Annotated[str | None, typer.Option(help="New name")] = None,
    description: Annotated[str | None, typer.Option(help="New description")] = None,
    account_role: Annotated[
        GroupRoleChoice | None, typer.Option(help="New account role (none removes it)")
    ] = None,
) -> None:
    """Change a group's name, description or account role (refused if it changed since it was
    read)."""
    c = Context.of(ctx)
    if name is None and description is None and account_role is None:
        fail("give at least one of --name, --description, --account-role")
    with c.connected() as client:
        current = _resolve_group(client, group)
        if account_role is None:
            updated = client.update_group(
                current.id,
                name=name,
                description=description,
                resource_version=current.resource_version,
            )
        else:
            updated = client.update_group(
                current.id,
                name=name,
                description=description,
                account_role=None if account_role is GroupRoleChoice.none else account_role.value,
                resource_version=current.resource_version,
            )
    c.emit(updated, _group_line(updated))


@app.command("delete")
def group_delete(ctx: typer.Context, group: GroupArgument) -> None:
    """Remove a group with its memberships and namespace permissions."""
    c = Context.of(ctx)
    with c.connected() as client:
        target = _resolve_group(client, group)
        client.delete_group(target.id, resource_version=target.resource_version)
    c.emit({"deleted": target.id}, f"deleted group {target.name}")


@app.command("members")
def group_members(
    ctx: typer.Context,
    group: GroupArgument,
    page_size: PageSizeOption = 100,
    limit: LimitOption = None,
) -> None:
    """A group's members: user id, email, source (manual, scim, idp)."""
    c = Context.of(ctx)
    with c.connected() as client:
        target = _resolve_group(client, group)
        members = list(client.iter_group_members(target.id, page_size=page_size, limit=limit))
    c.emit_rows(
        "members",
        members,
        "\n".join(f"{m.user_id}\t{m.email}\t{m.source}" for m in members) or "no members",
    )


@app.command("add-member")
def group_add_member(ctx: typer.Context, group: GroupArgument, users: UsersArgument) -> None:
    """Add users (ids or emails) to a group; members already in it stay."""
    c = Context.of(ctx)
    with c.connected() as client:
        target = _resolve_group(client, group)
        updated = client.update_group_members(target.id, add=_user_ids(client, users))
    c.emit(updated, _group_line(updated))


@app.command("remove-member")
def group_remove_member(ctx: typer.Context, group: GroupArgument, users: UsersArgument) -> None:
    """Remove users (ids or emails) from a group."""
    c = Context.of(ctx)
    with c.connected() as client:
        target = _resolve_group(client, group)
        updated = client.update_group_members(target.id, remove=_user_ids(client, users))
    c.emit(updated, _group_line(updated))


@app.command("set-namespace-permission")
def group_set_namespace_permission(
    ctx: typer.Context,
    group: GroupArgument,
    namespace_id: NamespaceOption,
    permission: PermissionOption,
) -> None:
    """Set a group's permission on one namespace (its members hold it)."""
    c = Context.of(ctx)
    updated = c.call(
        lambda client: client.set_group_namespace_permission(
            namespace_id, _resolve_group(client, group).id, permission.granted
        )
    )
    c.emit(updated, _group_line(updated))
