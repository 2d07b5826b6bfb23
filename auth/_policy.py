"""Principals and the one policy function, :func:`authorize`, that decides every control-plane
request and every data-plane (gateway) call.

The policy is a table: account role → actions it may perform anywhere in its account, plus,
for namespace-level actions, the namespace permission that grants the action on one namespace.
Everything not in the table is denied. Nothing outside this module maps roles to actions: the
docs' role-by-route matrix, the gateway's per-namespace permission (:func:`data_plane_permission`)
and the services' checks all ask :func:`authorize`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class PrincipalKind(enum.StrEnum):
    OPERATOR = "operator"
    USER = "user"
    SERVICE_ACCOUNT = "service_account"


class AccountRole(enum.StrEnum):
    """A user's (or account-wide service account's) role in its account, as in Temporal Cloud."""

    OWNER = "owner"
    ADMIN = "admin"
    DEVELOPER = "developer"
    FINANCE_ADMIN = "finance_admin"
    READ = "read"
    METRICS_READ = "metrics_read"


class NamespacePermission(enum.StrEnum):
    """Permission on one namespace; each level includes the ones below it."""

    READ = "read"
    WRITE = "write"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _PERMISSION_RANK[self]

    def includes(self, other: NamespacePermission) -> bool:
        return self.rank >= other.rank


_PERMISSION_RANK = {
    NamespacePermission.READ: 1,
    NamespacePermission.WRITE: 2,
    NamespacePermission.ADMIN: 3,
}


class Action(enum.StrEnum):
    ACCOUNT_CREATE = "account.create"
    # The operator lists every account, with its plan, credits and namespaces.
    ACCOUNT_READ = "account.read"
    # The operator suspends, resumes and deletes accounts.
    ACCOUNT_SUSPEND = "account.suspend"
    ACCOUNT_DELETE = "account.delete"
    # Any principal of an account reads its own account (name, state, plan).
    ACCOUNT_READ_OWN = "account.read_own"
    ACCOUNT_QUOTAS_READ = "account.quotas.read"
    ACCOUNT_QUOTAS_SET = "account.quotas.set"
    NAMESPACE_CREATE = "namespace.create"
    NAMESPACE_READ = "namespace.read"
    NAMESPACE_UPDATE = "namespace.update"
    NAMESPACE_DELETE = "namespace.delete"
    NAMESPACE_ACCESS_UPDATE = "namespace.access.update"
    NAMESPACE_LIMITS_SET = "namespace.limits.set"
    OPERATION_READ = "operation.read"
    GATEWAY_ROUTES_READ = "gateway_routes.read"
    # List registered gateways and deregister one that is gone for good.
    GATEWAY_MANAGE = "gateway.manage"
    # Register, list, drain and deregister cells (the Temporal clusters namespaces live on).
    CELL_MANAGE = "cell.manage"
    USER_CREATE = "user.create"
    USER_READ = "user.read"
    USER_UPDATE = "user.update"
    USER_DELETE = "user.delete"
    SERVICE_ACCOUNT_CREATE = "service_account.create"
    SERVICE_ACCOUNT_READ = "service_account.read"
    SERVICE_ACCOUNT_UPDATE = "service_account.update"
    SERVICE_ACCOUNT_DELETE = "service_account.delete"
    # User groups: their account role, namespace permissions and members.
    GROUP_CREATE = "group.create"
    GROUP_READ = "group.read"
    GROUP_UPDATE = "group.update"
    GROUP_DELETE = "group.delete"
    API_KEY_CREATE = "api_key.create"
    API_KEY_READ = "api_key.read"
    API_KEY_UPDATE = "api_key.update"
    API_KEY_DELETE = "api_key.delete"
    AUDIT_LOG_READ = "audit_log.read"
    # Set or remove the account's audit log sink (S3).
    AUDIT_SINK_UPDATE = "audit_sink.update"
    SAML_CONFIGURE = "saml.configure"
    # Read and set which IdP groups (OIDC claim, SAML attribute) map to which user groups.
    GROUP_CLAIMS_MANAGE = "group_claims.manage"
    # Create (rotate), read and delete the account's SCIM bearer token.
    SCIM_TOKEN_MANAGE = "scim_token.manage"  # noqa: S105 (an action name)
    GATEWAY_API_KEYS_VERIFY = "gateway_api_keys.verify"
    IDENTITY_READ = "identity.read"
    USAGE_READ = "usage.read"
    INVOICE_READ = "invoice.read"
    BILLING_READ = "billing.read"
    EXPORT_SINK_UPDATE = "export_sink.update"
    ACCOUNT_PLAN_SET = "account.plan.set"
    CREDIT_GRANT = "credit.grant"
    CREDIT_NOTE_CREATE = "credit_note.create"
    # The tenant OpenMetrics endpoint: account-wide for the metrics_read role (and owners and
    # admins), else per namespace for whoever may read it.
    METRICS_READ = "metrics.read"
    # Temporal calls through the gateway on one namespace, by the permission the method needs
    # (no route declares these).
    NAMESPACE_DATA_READ = "namespace.data.read"
    NAMESPACE_DATA_WRITE = "namespace.data.write"
    NAMESPACE_DATA_ADMIN = "namespace.data.admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``account_id`` is None only for the operator.

    ``account_role`` is None for a service account scoped to one namespace
    (``namespace_scope``); ``namespace_permissions`` maps namespace id → permission held there.
    For a user, ``group_roles`` are the account roles of the user groups it belongs to and
    ``namespace_permissions`` already holds the highest of its own and its groups' permissions
    (:func:`effective_namespace_permissions`): the user may do what any of its roles allows.
    """

    kind: PrincipalKind
    id: str
    account_id: str | None
    account_role: str | None
    display: str
    api_key_id: str | None = None
    namespace_scope: str | None = None
    namespace_permissions: Mapping[str, NamespacePermission] = field(
        default_factory=dict, hash=False
    )
    group_roles: frozenset[str] = frozenset()


GROUP_GRANT_KIND = "group"
"""``NamespaceAccess.principal_kind`` of a user group's namespace permission (a group is not a
principal: its members are)."""

GROUP_ROLES = frozenset(role for role in AccountRole if role is not AccountRole.OWNER)
"""The account roles a user group may hold: every role but owner (owners are people, so the
last-owner guard counts users)."""


def effective_namespace_permissions(
    *grants: Mapping[str, NamespacePermission],
) -> dict[str, NamespacePermission]:
    """Namespace id → the highest permission any of ``grants`` (a user's own, each of its
    groups') holds there."""
    effective: dict[str, NamespacePermission] = {}
    for grant in grants:
        for namespace_id, permission in grant.items():
            held = effective.get(namespace_id)
            if held is None or permission.rank > held.rank:
                effective[namespace_id] = permission
    return effective


EVERY = "*"
"""In a :class:`Resource`, stands for every account, namespace or owner. No real id is ``*``, so
no account membership, namespace permission or ownership matches it: only a grant that covers
all of them does."""


@dataclass(frozen=True)
class Resource:
    """What an action is performed on. ``None`` fields are unknown at that point (a route-level
    check before the row is read): the check then answers whether the principal *may* be
    allowed, and the service repeats it with the row.

    ``owner_id`` is the principal that owns the resource (an API key's user or service
    account); ``role`` the account role the resource has or is given (a user being invited,
    changed or deleted), so only owners can create, change or remove owners.
    """

    account_id: str | None = None
    namespace_id: str | None = None
    owner_id: str | None = None
    role: str | None = None

    @classmethod
    def whole_account(cls, account_id: str | None) -> Resource:
        """Every namespace and every owner's resources of the account: ``authorize`` allows an
        action on it only when it is allowed on all of them (e.g. to list without a filter)."""
        return cls(account_id=account_id, namespace_id=EVERY, owner_id=EVERY)

    @classmethod
    def every_account(cls) -> Resource:
        """Every account's resources: only the operator's installation-wide actions are
        allowed on it (e.g. following any account's operations)."""
        return cls(account_id=EVERY, namespace_id=EVERY, owner_id=EVERY)


# The operator runs the installation: it creates accounts, sets namespaces' rate limits and
# follows their operations, but does not otherwise act inside tenants' accounts.
OPERATOR_ACTIONS = frozenset(
    {
        Action.ACCOUNT_CREATE,
        Action.ACCOUNT_READ,
        Action.ACCOUNT_SUSPEND,
        Action.ACCOUNT_DELETE,
        Action.GATEWAY_ROUTES_READ,
        Action.GATEWAY_MANAGE,
        Action.CELL_MANAGE,
        Action.NAMESPACE_LIMITS_SET,
        # Per-account quotas (namespaces, users, keys, operations in flight).
        Action.ACCOUNT_QUOTAS_READ,
        Action.ACCOUNT_QUOTAS_SET,
        Action.OPERATION_READ,
        Action.IDENTITY_READ,
        Action.GATEWAY_API_KEYS_VERIFY,
        # Billing administration: plans, prepaid credits and corrections of invoices.
        Action.ACCOUNT_PLAN_SET,
        Action.CREDIT_GRANT,
        Action.CREDIT_NOTE_CREATE,
    }
)

_SELF_SERVICE = frozenset({Action.IDENTITY_READ, Action.ACCOUNT_READ_OWN})
# Billing data is for the account's owners and its finance admins, as in Temporal Cloud.
_BILLING = frozenset(
    {Action.USAGE_READ, Action.INVOICE_READ, Action.BILLING_READ, Action.EXPORT_SINK_UPDATE}
)
_ACCOUNT_ADMIN = (
    frozenset(Action)
    - {
        Action.ACCOUNT_CREATE,
        Action.ACCOUNT_READ,
        Action.ACCOUNT_SUSPEND,
        Action.ACCOUNT_DELETE,
        Action.ACCOUNT_QUOTAS_SET,
        Action.GATEWAY_ROUTES_READ,
        Action.GATEWAY_MANAGE,
        Action.CELL_MANAGE,
        Action.GATEWAY_API_KEYS_VERIFY,
        Action.NAMESPACE_LIMITS_SET,
        Action.ACCOUNT_PLAN_SET,
        Action.CREDIT_GRANT,
        Action.CREDIT_NOTE_CREATE,
    }
    - _BILLING
)

# Account role → actions allowed on every resource of the account.
ROLE_ACTIONS: dict[AccountRole, frozenset[Action]] = {
    AccountRole.OWNER: _ACCOUNT_ADMIN | _BILLING,
    AccountRole.ADMIN: _ACCOUNT_ADMIN,
    AccountRole.DEVELOPER: _SELF_SERVICE | {Action.NAMESPACE_CREATE},
    AccountRole.FINANCE_ADMIN: _SELF_SERVICE | _BILLING,
    AccountRole.READ: _SELF_SERVICE | {Action.NAMESPACE_DATA_READ},
    AccountRole.METRICS_READ: _SELF_SERVICE | {Action.METRICS_READ},
}

# Namespace-level action → the namespace permission that allows it on that namespace (for
# principals whose account role does not allow it account-wide).
NAMESPACE_ACTIONS: dict[Action, NamespacePermission] = {
    Action.NAMESPACE_READ: NamespacePermission.READ,
    Action.OPERATION_READ: NamespacePermission.READ,
    Action.METRICS_READ: NamespacePermission.READ,
    Action.NAMESPACE_UPDATE: NamespacePermission.ADMIN,
    Action.NAMESPACE_DELETE: NamespacePermission.ADMIN,
    Action.NAMESPACE_ACCESS_UPDATE: NamespacePermission.ADMIN,
    Action.NAMESPACE_DATA_READ: NamespacePermission.READ,
    Action.NAMESPACE_DATA_WRITE: NamespacePermission.WRITE,
    Action.NAMESPACE_DATA_ADMIN: NamespacePermission.ADMIN,
}

# The action a Temporal call needing each namespace permission performs (see
# :func:`data_plane_permission`).
DATA_PLANE_ACTIONS: dict[NamespacePermission, Action] = {
    NamespacePermission.READ: Action.NAMESPACE_DATA_READ,
    NamespacePermission.WRITE: Action.NAMESPACE_DATA_WRITE,
    NamespacePermission.ADMIN: Action.NAMESPACE_DATA_ADMIN,
}

# Actions every account principal may perform on resources it owns itself (its API keys).
OWN_RESOURCE_ACTIONS = frozenset(
    {Action.API_KEY_CREATE, Action.API_KEY_READ, Action.API_KEY_UPDATE, Action.API_KEY_DELETE}
)

# Only an owner may create, change or remove an owner.
_OWNER_GUARDED = frozenset({Action.USER_CREATE, Action.USER_UPDATE, Action.USER_DELETE})


def _account_wide(principal: Principal, action: Action) -> bool:
    """True when one of the principal's account roles (its own, its groups') allows ``action``
    on every resource of its account (so no per-namespace or per-owner check is needed)."""
    if principal.kind is PrincipalKind.OPERATOR:
        return False
    roles = (
        principal.group_roles
        if principal.account_role is None
        else {principal.account_role, *principal.group_roles}
    )
    for name in roles:
        try:
            role = AccountRole(name)
        except ValueError:
            continue
        if action in ROLE_ACTIONS[role]:
            return True
    return False


def may_grant_role(principal: Principal, role: AccountRole) -> bool:
    """True when every action ``role`` allows is one the principal may already perform on its
    whole account: giving a group that role (or adding a user to such a group) then hands out
    nothing the principal does not hold itself (an admin may not create a finance_admin group
    and join it to reach billing)."""
    whole = Resource.whole_account(principal.account_id)
    return all(authorize(principal, action, whole) for action in ROLE_ACTIONS[role])


def authorize(principal: Principal, action: Action, resource: Resource | None = None) -> bool:
    """Deny by default. ``resource`` None (or with None fields) asks whether the action may be
    allowed at all, e.g. at the route before the row is read; the service asks again with the
    resource it found. A resource of another account is always denied."""
    resource = resource or Resource()
    if principal.kind is PrincipalKind.OPERATOR:
        return action in OPERATOR_ACTIONS
    if principal.account_id is None:
        return False
    if resource.account_id is not None and resource.account_id != principal.account_id:
        return False
    if (
        action in _OWNER_GUARDED
        and resource.role == AccountRole.OWNER
        and principal.account_role != AccountRole.OWNER
    ):
        return False
    if _account_wide(principal, action):
        return True
    if action in _SELF_SERVICE:
        # A namespace-scoped service account may still ask who it is.
        return True
    if action in OWN_RESOURCE_ACTIONS:
        return resource.owner_id is None or resource.owner_id == principal.id
    required = NAMESPACE_ACTIONS.get(action)
    if required is None:
        return False
    if resource.namespace_id is None:
        # Decided per namespace: possible for any principal of the account.
        return True
    if principal.namespace_scope is not None and resource.namespace_id != principal.namespace_scope:
        return False
    held = principal.namespace_permissions.get(resource.namespace_id)
    return held is not None and held.includes(required)


def data_plane_permission(
    principal: Principal, namespace_id: str, namespace_account_id: str
) -> NamespacePermission | None:
    """The highest permission an API-key principal holds on a namespace for Temporal calls
    through the gateway, as :func:`authorize` answers for the data-plane actions (account
    owners and admins hold ``admin`` everywhere in their account, the ``read`` role ``read``,
    everyone else what was granted on that namespace, a namespace-scoped service account only
    on its namespace). None: no access."""
    resource = Resource(account_id=namespace_account_id, namespace_id=namespace_id)
    held = [
        permission
        for permission, action in DATA_PLANE_ACTIONS.items()
        if authorize(principal, action, resource)
    ]
    return max(held, key=lambda permission: permission.rank, default=None)
