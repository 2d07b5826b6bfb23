"""The one policy function: deny by default, account roles, namespace permissions, own keys."""

from __future__ import annotations

import dataclasses

import pytest

from auth import (
    GROUP_ROLES,
    AccountRole,
    Action,
    NamespacePermission,
    Principal,
    PrincipalKind,
    Resource,
    authorize,
    effective_namespace_permissions,
    may_grant_role,
)


def _user(role: str | None, **permissions: NamespacePermission) -> Principal:
    return Principal(
        PrincipalKind.USER,
        "u1",
        "acct1",
        role,
        "user:u1",
        namespace_permissions={f"{name}.acct1": p for name, p in permissions.items()},
    )


def test_every_action_is_denied_to_an_unknown_role() -> None:
    """On a concrete resource (a namespace, another owner's key), an unknown role gets nothing
    but its own identity and account."""
    principal = _user("emperor")
    resource = Resource("acct1", namespace_id="orders.acct1", owner_id="u2")
    allowed = {action for action in Action if authorize(principal, action, resource)}
    assert allowed == {Action.IDENTITY_READ, Action.ACCOUNT_READ_OWN}


def test_operator_only_runs_the_installation() -> None:
    operator = Principal(PrincipalKind.OPERATOR, "op", None, None, "operator")
    allowed = {action for action in Action if authorize(operator, action)}
    assert allowed == {
        Action.ACCOUNT_CREATE,
        Action.ACCOUNT_READ,
        Action.ACCOUNT_SUSPEND,
        Action.ACCOUNT_DELETE,
        Action.ACCOUNT_QUOTAS_READ,
        Action.ACCOUNT_QUOTAS_SET,
        Action.GATEWAY_ROUTES_READ,
        Action.GATEWAY_MANAGE,
        Action.NAMESPACE_LIMITS_SET,
        Action.OPERATION_READ,
        Action.IDENTITY_READ,
        Action.GATEWAY_API_KEYS_VERIFY,
        Action.ACCOUNT_PLAN_SET,
        Action.CREDIT_GRANT,
        Action.CREDIT_NOTE_CREATE,
        Action.CELL_MANAGE,
    }


@pytest.mark.parametrize("role", [AccountRole.OWNER, AccountRole.ADMIN])
def test_owner_and_admin_are_denied_in_another_account(role: AccountRole) -> None:
    principal = _user(role.value)
    for action in Action:
        assert not authorize(principal, action, Resource(account_id="acct2")), action


def test_only_owners_touch_owners() -> None:
    admin, owner = _user("admin"), _user("owner")
    for action in (Action.USER_CREATE, Action.USER_UPDATE, Action.USER_DELETE):
        assert not authorize(admin, action, Resource(role="owner"))
        assert authorize(admin, action, Resource(role="developer"))
        assert authorize(owner, action, Resource(role="owner"))


def test_namespace_permissions_rank() -> None:
    reader = _user("read", orders=NamespacePermission.READ, billing=NamespacePermission.ADMIN)
    orders, billing, other = (Resource("acct1", f"{n}.acct1") for n in ("orders", "billing", "x"))
    assert authorize(reader, Action.NAMESPACE_READ, orders)
    assert not authorize(reader, Action.NAMESPACE_UPDATE, orders)
    assert authorize(reader, Action.NAMESPACE_DELETE, billing)
    assert authorize(reader, Action.NAMESPACE_ACCESS_UPDATE, billing)
    assert not authorize(reader, Action.NAMESPACE_READ, other)
    assert not authorize(reader, Action.NAMESPACE_CREATE)


def test_keys_of_others_only_for_owners_and_admins() -> None:
    developer, admin = _user("developer"), _user("admin")
    mine, theirs = Resource("acct1", owner_id="u1"), Resource("acct1", owner_id="u2")
    assert authorize(developer, Action.API_KEY_UPDATE, mine)
    assert not authorize(developer, Action.API_KEY_UPDATE, theirs)
    assert authorize(admin, Action.API_KEY_DELETE, theirs)


def test_namespace_scoped_service_account() -> None:
    scoped = Principal(
        PrincipalKind.SERVICE_ACCOUNT,
        "sa1",
        "acct1",
        None,
        "service-account:ci",
        namespace_scope="orders.acct1",
        namespace_permissions={"orders.acct1": NamespacePermission.WRITE},
    )
    assert authorize(scoped, Action.NAMESPACE_READ, Resource("acct1", "orders.acct1"))
    assert not authorize(scoped, Action.NAMESPACE_UPDATE, Resource("acct1", "orders.acct1"))
    assert not authorize(scoped, Action.NAMESPACE_READ, Resource("acct1", "billing.acct1"))
    for action in (Action.USER_READ, Action.SERVICE_ACCOUNT_READ, Action.AUDIT_LOG_READ):
        assert not authorize(scoped, action)
    assert authorize(scoped, Action.IDENTITY_READ)


def test_data_plane_permission_follows_roles_grants_and_scope() -> None:
    """Owners/admins hold admin on every namespace of their account, the read role read,
    others only what was granted; a namespace-scoped principal nothing outside its scope;
    nobody anything in another account."""
    from auth import data_plane_permission

    assert data_plane_permission(_user("owner"), "a.acct1", "acct1") is NamespacePermission.ADMIN
    assert data_plane_permission(_user("read"), "a.acct1", "acct1") is NamespacePermission.READ
    assert data_plane_permission(_user("developer"), "a.acct1", "acct1") is None
    granted = dataclasses.replace(
        _user("developer"), namespace_permissions={"a.acct1": NamespacePermission.WRITE}
    )
    assert data_plane_permission(granted, "a.acct1", "acct1") is NamespacePermission.WRITE
    assert data_plane_permission(granted, "b.acct1", "acct1") is None
    scoped = dataclasses.replace(granted, account_role=None, namespace_scope="a.acct1")
    assert data_plane_permission(scoped, "a.acct1", "acct1") is NamespacePermission.WRITE
    assert data_plane_permission(_user("owner"), "a.acct2", "acct2") is None


def test_data_plane_permission_is_what_authorize_answers() -> None:
    """The gateway's permission is not a second role table: it is the highest level whose
    data-plane action ``authorize`` allows (a read user granted write holds write)."""
    from auth import data_plane_permission

    read_with_write = _user("read", a=NamespacePermission.WRITE)
    assert data_plane_permission(read_with_write, "a.acct1", "acct1") is NamespacePermission.WRITE
    assert data_plane_permission(read_with_write, "b.acct1", "acct1") is NamespacePermission.READ
    resource = Resource("acct1", "a.acct1")
    for role in AccountRole:
        user = _user(role.value)
        held = data_plane_permission(user, "a.acct1", "acct1")
        allowed = {
            permission
            for permission, action in (
                (NamespacePermission.READ, Action.NAMESPACE_DATA_READ),
                (NamespacePermission.WRITE, Action.NAMESPACE_DATA_WRITE),
                (NamespacePermission.ADMIN, Action.NAMESPACE_DATA_ADMIN),
            )
            if authorize(user, action, resource)
        }
        assert held == max(allowed, key=lambda p: p.rank, default=None), role


def test_a_namespace_scoped_principal_is_refused_outside_its_namespace_even_with_a_grant() -> None:
    stray = Principal(
        PrincipalKind.SERVICE_ACCOUNT,
        "sa1",
        "acct1",
        None,
        "sa",
        namespace_scope="orders.acct1",
        namespace_permissions={
            "orders.acct1": NamespacePermission.READ,
            "billing.acct1": NamespacePermission.ADMIN,
        },
    )
    assert authorize(stray, Action.NAMESPACE_READ, Resource("acct1", "orders.acct1"))
    assert not authorize(stray, Action.NAMESPACE_READ, Resource("acct1", "billing.acct1"))


def test_whole_account_and_every_account_resources() -> None:
    """``Resource.whole_account`` is allowed only account-wide (not by one namespace grant or
    by owning one's keys); ``Resource.every_account`` only for the operator's actions."""
    developer = _user("developer", orders=NamespacePermission.ADMIN)
    assert authorize(developer, Action.NAMESPACE_READ, Resource("acct1", "orders.acct1"))
    assert not authorize(developer, Action.NAMESPACE_READ, Resource.whole_account("acct1"))
    assert not authorize(developer, Action.API_KEY_READ, Resource.whole_account("acct1"))
    assert authorize(_user("admin"), Action.API_KEY_READ, Resource.whole_account("acct1"))
    operator = Principal(PrincipalKind.OPERATOR, "op", None, None, "operator")
    assert authorize(operator, Action.OPERATION_READ, Resource.every_account())
    assert not authorize(_user("owner"), Action.OPERATION_READ, Resource.every_account())


def test_a_users_groups_add_their_roles_to_its_own() -> None:
    """A user's effective access is the highest of its own and its groups': a read user in a
    group with the developer role may create namespaces; in none it may not."""
    alone = Principal(PrincipalKind.USER, "u1", "a1", AccountRole.READ.value, "user:u1")
    grouped = Principal(
        PrincipalKind.USER,
        "u1",
        "a1",
        AccountRole.READ.value,
        "user:u1",
        group_roles=frozenset({AccountRole.DEVELOPER.value}),
    )
    assert not authorize(alone, Action.NAMESPACE_CREATE, Resource(account_id="a1"))
    assert authorize(grouped, Action.NAMESPACE_CREATE, Resource(account_id="a1"))
    # The groups' roles never reach another account.
    assert not authorize(grouped, Action.NAMESPACE_CREATE, Resource(account_id="a2"))
    # A group role cannot make its member an owner for the owner guard.
    admin_group = Principal(
        PrincipalKind.USER,
        "u1",
        "a1",
        AccountRole.READ.value,
        "user:u1",
        group_roles=frozenset({AccountRole.ADMIN.value}),
    )
    assert authorize(admin_group, Action.USER_UPDATE, Resource(account_id="a1", role="developer"))
    assert not authorize(admin_group, Action.USER_UPDATE, Resource(account_id="a1", role="owner"))
    assert AccountRole.OWNER not in GROUP_ROLES


def test_effective_namespace_permissions_take_the_highest_grant() -> None:
    own = {"ns-a": NamespacePermission.WRITE, "ns-b": NamespacePermission.READ}
    group_one = {"ns-a": NamespacePermission.READ, "ns-c": NamespacePermission.READ}
    group_two = {"ns-b": NamespacePermission.ADMIN}
    assert effective_namespace_permissions(own, group_one, group_two) == {
        "ns-a": NamespacePermission.WRITE,
        "ns-b": NamespacePermission.ADMIN,
        "ns-c": NamespacePermission.READ,
    }
    assert effective_namespace_permissions() == {}


def test_a_principal_gives_a_group_only_roles_it_holds_entirely() -> None:
    """An owner may give a group any role a group may hold; an admin every one but
    finance_admin (billing is the owners'); a developer no role with an action it lacks; an
    admin role held through a group counts like an own one."""
    owner = _user("owner")
    admin = _user("admin")
    developer = _user("developer")
    assert all(may_grant_role(owner, role) for role in GROUP_ROLES)
    assert {role for role in GROUP_ROLES if may_grant_role(admin, role)} == GROUP_ROLES - {
        AccountRole.FINANCE_ADMIN
    }
    assert not may_grant_role(developer, AccountRole.ADMIN)
    assert not may_grant_role(developer, AccountRole.READ)  # read holds namespace data read
    grouped_admin = dataclasses.replace(
        _user("read"), group_roles=frozenset({AccountRole.ADMIN.value})
    )
    assert may_grant_role(grouped_admin, AccountRole.DEVELOPER)
    assert not may_grant_role(grouped_admin, AccountRole.FINANCE_ADMIN)
