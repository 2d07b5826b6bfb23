"""Pages of every list route, one way: ``page_size`` and ``page_token`` in, ``next_page_token``
out (``""`` on the last page), keyset pagination on a stable order.

A page starts after the sort key of the previous page's last row, so a row inserted or deleted
between two page requests never shifts another row onto a second page or off both: every row
that exists throughout the walk is returned exactly once.

Tokens are sealed (AES-GCM, :class:`auth.SecretBox`) and bound to the list, the caller's account
and the filters of the request that produced them: a token is opaque, cannot be forged or
edited, and one from another list, account or filter set is refused (400 ``invalid-field``
naming ``page_token``), as is anything this API never returned.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from sqlalchemy import ColumnElement, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from auth import SecretBox, SecretUnreadable
from controlplane.kit.errors import InvalidField

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# Long enough for any token this API seals (a handful of sort values), short enough that a
# forged megabyte is refused before it is decoded.
MAX_TOKEN_LENGTH = 2048
# A message, not a secret.
TOKEN_REFUSAL = "page_token is not one this API returned for this list, account and filters"  # noqa: S105

T = TypeVar("T")
SortValue = str | int | dt.datetime | None


@dataclass(frozen=True)
class PageRequest:
    """What a list request asked for: how many rows, and where the previous page ended."""

    box: SecretBox
    size: int = DEFAULT_PAGE_SIZE
    token: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise InvalidField(
                f"page_size must be 1-{MAX_PAGE_SIZE}, got {self.size}", field="page_size"
            )
        if len(self.token) > MAX_TOKEN_LENGTH:
            raise InvalidField(TOKEN_REFUSAL, field="page_token")


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list[T]
    next_page_token: str


async def _page_request(
    request: Request,
    page_size: Annotated[
        int, Query(description=f"Rows per page, 1-{MAX_PAGE_SIZE}")
    ] = DEFAULT_PAGE_SIZE,
    page_token: Annotated[
        str,
        Query(description="The previous page's next_page_token, sent with the same filters"),
    ] = "",
) -> PageRequest:
    box: SecretBox = request.app.state.secret_box
    return PageRequest(box=box, size=page_size, token=page_token)


PageDep = Annotated[PageRequest, Depends(_page_request)]


def _binding(list_name: str, account_id: str | None, filters: Mapping[str, object]) -> str:
    plain = {name: _plain(value) for name, value in filters.items() if value is not None}
    return json.dumps(
        ["page", list_name, account_id or "", plain], sort_keys=True, separators=(",", ":")
    )


def _plain(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _encode(values: Sequence[SortValue]) -> list[object]:
    return [
        {"t": value.isoformat()} if isinstance(value, dt.datetime) else value for value in values
    ]


def _decode(raw: object, width: int) -> list[SortValue]:
    if not isinstance(raw, list) or len(raw) != width:
        raise ValueError("wrong shape")
    values: list[SortValue] = []
    for item in raw:
        if isinstance(item, dict):
            values.append(dt.datetime.fromisoformat(str(item["t"])))
        elif item is None or isinstance(item, str | int):
            values.append(item)
        else:
            raise ValueError("wrong value")
    return values


def _after(
    order: Sequence[InstrumentedAttribute[Any]], values: Sequence[SortValue], descending: bool
) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in ``order``: (a > x) or (a = x and b > y) or ..."""
    clauses: list[ColumnElement[bool]] = []
    for index, column in enumerate(order):
        beyond = column < values[index] if descending else column > values[index]
        equal = [order[i] == values[i] for i in range(index)]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


async def fetch_page(
    session: AsyncSession,
    statement: Select[T],
    *,
    page: PageRequest,
    order: Sequence[InstrumentedAttribute[Any]],
    list_name: str,
    account_id: str | None,
    filters: Mapping[str, object] | None = None,
    descending: bool = False,
) -> Page[T]:
    """One page of ``statement`` (already scoped and filtered) in ``order`` (ascending, or
    descending when ``descending``), whose last column must be unique and none nullable. The
    token binds ``list_name``, ``account_id`` and ``filters`` (normalized values)."""
    binding = _binding(list_name, account_id, filters or {})
    if page.token:
        try:
            values = _decode(json.loads(page.box.open(page.token, bound_to=binding)), len(order))
        except (SecretUnreadable, ValueError, KeyError, TypeError):
            raise InvalidField(TOKEN_REFUSAL, field="page_token") from None
        statement = statement.where(_after(order, values, descending))
    ordering = [column.desc() if descending else column.asc() for column in order]
    statement = statement.order_by(None).order_by(*ordering).limit(page.size + 1)
    rows = list((await session.execute(statement)).scalars())
    if len(rows) <= page.size:
        return Page(rows=rows, next_page_token="")
    rows = rows[: page.size]
    last = [getattr(rows[-1], column.key) for column in order]
    token = page.box.seal(
        json.dumps(_encode([_plain_sort(value) for value in last])), bound_to=binding
    )
    return Page(rows=rows, next_page_token=token)


def _plain_sort(value: object) -> SortValue:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if value is None or isinstance(value, str | int | dt.datetime):
        return value
    raise TypeError(f"cannot page on a {type(value).__name__}")
