"""The price book in force, loaded and checked once at startup by the API, the worker and the
supervisor. A module of its own beside ``config``: invoicing, plans (``billing_account``) and the
request dependencies all read it, and none of them owns it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from billing import PriceBook, PriceBookError, load_price_book
from controlplane.config import StratusSettings


@dataclass(frozen=True)
class Pricing:
    """The price book, the plan of accounts the operator has not put on another, and how long
    a month's invoice waits for late usage before it is finalized."""

    book: PriceBook
    default_plan: str
    grace: dt.timedelta


def load_pricing(settings: StratusSettings) -> Pricing:
    """Read and check the configured price book. Raises :class:`billing.PriceBookError`
    naming the file, line and reason; every process refuses to start on one."""
    path = settings.price_book_path
    try:
        book = load_price_book(path)
    except OSError as exc:
        raise PriceBookError(str(path), 1, f"cannot read the price book: {exc.strerror}") from None
    if settings.default_plan not in book.plans:
        raise PriceBookError(
            str(path),
            1,
            f"the default plan {settings.default_plan!r} (STRATUS_DEFAULT_PLAN) is not one of "
            f"its plans ({', '.join(sorted(book.plans))})",
        )
    return Pricing(
        book=book,
        default_plan=settings.default_plan,
        grace=dt.timedelta(hours=settings.invoice_grace_hours),
    )
