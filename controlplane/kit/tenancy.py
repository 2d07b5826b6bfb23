"""Tenant scoping: the one place that restricts a query to the caller's account.

Every repository builds its tenant-owned queries through :func:`scoped`, so no endpoint or
service filters by account on its own. Another account's rows are invisible (they answer 404,
never 403), which is what keeps their existence from leaking.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from auth import Principal
from controlplane.kit.errors import Forbidden

S = TypeVar("S", bound=Select[Any])


def scoped(statement: S, account_column: InstrumentedAttribute[str], principal: Principal) -> S:
    """``statement`` restricted to rows whose ``account_column`` is the principal's account."""
    if principal.account_id is None:
        raise Forbidden("this credential does not belong to an account")
    return statement.where(account_column == principal.account_id)
