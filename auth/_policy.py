"""Principals and the one policy function that decides every control-plane request."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PrincipalKind(enum.StrEnum):
    OPERATOR = "operator"
    USER = "user"


class Action(enum.StrEnum):
    ACCOUNT_CREATE = "account.create"
    NAMESPACE_CREATE = "namespace.create"
    NAMESPACE_READ = "namespace.read"
    NAMESPACE_UPDATE = "namespace.update"
    NAMESPACE_DELETE = "namespace.delete"
    OPERATION_READ = "operation.read"
    GATEWAY_ROUTES_READ = "gateway_routes.read"


@dataclass(frozen=True)
class Principal:
    """Who is calling. ``account_id`` is None only for the operator."""

    kind: PrincipalKind
    id: str
    account_id: str | None
    account_role: str | None
    display: str
    api_key_id: str | None = None


# Account roles allowed per action. The operator runs the installation; it does not act inside
# tenants' accounts.
_OPERATOR_ACTIONS = frozenset({Action.ACCOUNT_CREATE, Action.GATEWAY_ROUTES_READ})
_ROLE_ACTIONS: dict[str, frozenset[Action]] = {
    "owner": frozenset(
        {
            Action.NAMESPACE_CREATE,
            Action.NAMESPACE_READ,
            Action.NAMESPACE_UPDATE,
            Action.NAMESPACE_DELETE,
            Action.OPERATION_READ,
        }
    ),
}


def authorize(principal: Principal, action: Action, resource_account_id: str | None = None) -> bool:
    """Deny by default. Tenant actions need a role that allows them *and* the resource's account
    to be the principal's own (``resource_account_id`` None means "in the principal's account")."""
    if principal.kind is PrincipalKind.OPERATOR:
        return action in _OPERATOR_ACTIONS
    if principal.account_id is None or principal.account_role is None:
        return False
    if resource_account_id is not None and resource_account_id != principal.account_id:
        return False
    return action in _ROLE_ACTIONS.get(principal.account_role, frozenset())
