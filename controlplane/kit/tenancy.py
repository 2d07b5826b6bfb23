"""Tenant scoping: the wall between accounts, in one place.

A repository a tenant's request uses derives from :class:`TenantRepository`: it is built with the
caller's principal and every statement it runs -- select, update or delete -- goes through
:meth:`TenantRepository._scoped` (rows of a namespace through
:meth:`TenantRepository._scoped_to_namespaces`), and every row it adds or deletes is checked to be
of the caller's account. Another account's rows are invisible (they answer 404, never 403),
which keeps their existence from leaking.

Code that must see every tenant (the worker, the operator's routes, sign-in before there is a
principal) uses separately named ``System...Repository`` classes, so the exception shows at the
import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar

from sqlalchemy import ColumnElement, Delete, Result, Row, Select, Update, bindparam, false
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from auth import Action, Principal, Resource, authorize
from controlplane.kit.db import ReadOnlySession
from controlplane.kit.errors import Forbidden

AccountColumn = InstrumentedAttribute[str] | InstrumentedAttribute[str | None]


class _Filterable(Protocol):
    """A ``Select``, ``Update`` or ``Delete``: anything with a WHERE clause."""

    def where(self, *whereclause: ColumnElement[bool]) -> Self: ...


S = TypeVar("S", bound=_Filterable)


# The bound parameter that carries the caller's account into a statement scoped once
# (:func:`scoped_once`).
_TENANT_ACCOUNT = "tenant_account_id"


@dataclass(frozen=True)
class ScopedOnce:
    """A statement built once (at import) and restricted to the account given when it runs,
    by :meth:`TenantRepository._execute_scoped` only: a hot read neither builds nor hashes a
    statement per call (SQLAlchemy keeps the built statement's cache key)."""

    statement: Select[Any] | Update | Delete


def scoped_once(
    statement: Select[Any] | Update | Delete, account_column: AccountColumn
) -> ScopedOnce:
    """``statement`` restricted to rows whose ``account_column`` is the account of whoever runs
    it through :meth:`TenantRepository._execute_scoped`."""
    return ScopedOnce(statement.where(account_column == bindparam(_TENANT_ACCOUNT)))


class _AccountOwned(Protocol):
    @property
    def account_id(self) -> str | None: ...


class TenantRepository:
    """Base of every tenant-facing repository: constructed with the caller, scoped to its
    account in every statement."""

    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.session = session
        self.principal = principal

    @property
    def account_id(self) -> str:
        """The caller's account (a credential of no account, the operator's, reaches nothing
        here)."""
        if self.principal.account_id is None:
            raise Forbidden("this credential does not belong to an account")
        return self.principal.account_id

    def _scoped(self, statement: S, account_column: AccountColumn) -> S:
        """``statement`` restricted to rows whose ``account_column`` is the caller's account."""
        return statement.where(account_column == self.account_id)

    async def _execute_scoped(
        self, scoped: ScopedOnce, parameters: dict[str, Any] | None = None
    ) -> Result[Any]:
        """Run a statement of :func:`scoped_once` for the caller's account."""
        return await self.session.execute(
            scoped.statement, {**(parameters or {}), _TENANT_ACCOUNT: self.account_id}
        )

    async def _first_scoped(
        self, scoped: ScopedOnce, parameters: dict[str, Any] | None = None
    ) -> Row[Any] | Sequence[Any] | None:
        """The first row of a Core statement of :func:`scoped_once` (columns, not an ORM
        entity; by position and by name) for the caller's account; in a read-only unit of work,
        without the session's ORM machinery (:meth:`ReadOnlySession.first_row`)."""
        bound = {**(parameters or {}), _TENANT_ACCOUNT: self.account_id}
        if isinstance(self.session, ReadOnlySession):
            return await self.session.first_row(scoped.statement, bound)
        return (await self.session.execute(scoped.statement, bound)).first()

    def _scoped_to_namespaces(
        self,
        statement: S,
        account_column: AccountColumn,
        namespace_column: InstrumentedAttribute[str],
        action: Action,
    ) -> S:
        """:meth:`_scoped`, and further restricted to the namespaces on which the policy allows
        ``action`` (all of the account's when it allows it account-wide, else those where the
        caller holds a permission that grants it)."""
        statement = self._scoped(statement, account_column)
        principal = self.principal
        if authorize(principal, action, Resource.whole_account(self.account_id)):
            return statement
        allowed = [
            namespace_id
            for namespace_id in principal.namespace_permissions
            if authorize(principal, action, Resource(self.account_id, namespace_id))
        ]
        if not allowed:
            return statement.where(false())
        return statement.where(namespace_column.in_(allowed))

    def _own(self, row: _AccountOwned) -> None:
        """Refuse to add or delete a row of another account (a bug, never a tenant's doing:
        rows reach a service only through this repository's scoped reads)."""
        if row.account_id != self.account_id:
            raise Forbidden(f"{type(row).__name__} of another account")

    def _add(self, row: _AccountOwned) -> None:
        self._own(row)
        self.session.add(row)

    async def _delete(self, row: _AccountOwned) -> None:
        self._own(row)
        await self.session.delete(row)
