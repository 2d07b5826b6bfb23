"""Tenant scoping: the one place that restricts a query to the caller's account.

Every repository builds its tenant-owned queries through :func:`scoped` (and, for rows that
belong to a namespace, :func:`scoped_to_namespaces`), so no endpoint or service filters by
account on its own. Another account's rows are invisible (they answer 404, never 403), which is
what keeps their existence from leaking.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, false
from sqlalchemy.orm import InstrumentedAttribute

from auth import Action, Principal, Resource, authorize
from controlplane.kit.errors import Forbidden

S = TypeVar("S", bound=Select[Any])


AccountColumn = InstrumentedAttribute[str] | InstrumentedAttribute[str | None]


def scoped(statement: S, account_column: AccountColumn, principal: Principal) -> S:
    """``statement`` restricted to rows whose ``account_column`` is the principal's account."""
    if principal.account_id is None:
        raise Forbidden("this credential does not belong to an account")
    return statement.where(account_column == principal.account_id)


def scoped_to_namespaces(
    statement: S,
    account_column: AccountColumn,
    namespace_column: InstrumentedAttribute[str],
    principal: Principal,
    action: Action,
) -> S:
    """:func:`scoped`, and further restricted to the namespaces on which the policy allows
    ``action`` (all of the account's for an account-wide role, else those with a namespace
    permission that grants it)."""
    statement = scoped(statement, account_column, principal)
    if authorize(principal, action, Resource.whole_account(principal.account_id)):
        return statement
    allowed = [
        namespace_id
        for namespace_id in principal.namespace_permissions
        if authorize(
            principal,
            action,
            Resource(account_id=principal.account_id, namespace_id=namespace_id),
        )
    ]
    if not allowed:
        return statement.where(false())
    return statement.where(namespace_column.in_(allowed))
