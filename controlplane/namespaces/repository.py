from __future__ import annotations

from typing import cast

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action
from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.kit.tenancy import TenantRepository, scoped_once
from controlplane.models import Namespace
from controlplane.models.namespace import NamespaceView

# Built and scoped once: building a statement (and its cache key) per call cost more than
# SQLite's read of the row; the caller's account is bound when it runs.
_BY_ID = scoped_once(
    select(Namespace).where(Namespace.id == bindparam("namespace_id")), Namespace.account_id
)

# The same row as plain columns, for showing it (the API's hottest read): no ORM entity.
_VIEW_BY_ID = scoped_once(
    select(Namespace.__table__).where(Namespace.id == bindparam("namespace_id")),
    Namespace.account_id,
)


class NamespaceRepository(TenantRepository):
    """The caller's account's namespaces."""

    async def get(self, namespace_id: str) -> Namespace | None:
        result = await self._execute_scoped(_BY_ID, {"namespace_id": namespace_id})
        return result.scalar_one_or_none()

    async def view(self, namespace_id: str) -> NamespaceView | None:
        """The namespace's columns, to show it (not to change it)."""
        row = await self._first_scoped(_VIEW_BY_ID, {"namespace_id": namespace_id})
        # A row of the table's columns has each of them as an attribute of the same name.
        return cast("NamespaceView | None", row)

    async def list_readable(self) -> list[Namespace]:
        """The account's namespaces the caller may read."""
        statement = self._scoped_to_namespaces(
            select(Namespace).order_by(Namespace.name),
            Namespace.account_id,
            Namespace.id,
            Action.NAMESPACE_READ,
        )
        return list((await self.session.execute(statement)).scalars())

    async def page_readable(
        self, page: PageRequest, *, name: str | None = None, tag: tuple[str, str] | None = None
    ) -> Page[Namespace]:
        """A page of the account's namespaces the caller may read, by name; only those whose
        name starts with ``name`` and those with the tag ``tag`` (key, value) when given."""
        statement = self._scoped_to_namespaces(
            select(Namespace), Namespace.account_id, Namespace.id, Action.NAMESPACE_READ
        )
        if name:
            statement = statement.where(Namespace.name.startswith(name, autoescape=True))
        if tag is not None:
            # The key and value are validated tag text (spec.parse_tag_filter), both bound.
            statement = statement.where(Namespace.tags[tag[0]].as_string() == tag[1])
        return await fetch_page(
            self.session,
            statement,
            page=page,
            order=(Namespace.name, Namespace.id),
            list_name="namespaces",
            account_id=self.account_id,
            filters={"name": name, "tag": None if tag is None else ":".join(tag)},
        )

    async def readable_page(self, *, offset: int, limit: int) -> tuple[list[Namespace], int]:
        """``limit`` of the account's readable namespaces from ``offset`` (by name), and how
        many there are in all."""
        readable = self._scoped_to_namespaces(
            select(Namespace), Namespace.account_id, Namespace.id, Action.NAMESPACE_READ
        )
        page = readable.order_by(Namespace.name).offset(offset).limit(limit)
        total = select(func.count()).select_from(readable.subquery())
        rows = list((await self.session.execute(page)).scalars())
        return rows, (await self.session.execute(total)).scalar_one()

    def add(self, namespace: Namespace) -> None:
        self._add(namespace)


class SystemNamespaceRepository:
    """Every account's namespaces: for the provisioning worker, the operator's rate limits and
    the gateways' key verification, never for a tenant's request."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, namespace_id: str) -> Namespace | None:
        return await self.session.get(Namespace, namespace_id)

    async def list_for_account(self, account_id: str) -> list[Namespace]:
        statement = select(Namespace).where(Namespace.account_id == account_id)
        return list((await self.session.execute(statement)).scalars())

    async def delete(self, namespace: Namespace) -> None:
        await self.session.delete(namespace)
