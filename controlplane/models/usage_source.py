from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from controlplane.models.base import Base, TimestampMixin, UTCDateTime


class UsageSource(TimestampMixin, Base):
    """What a meter last saw of a cell as a whole.

    ``counter_total`` is the sum of every counter the cell exports: counters only grow while a
    process lives, so a smaller sum means the cell restarted even when each action series has
    climbed past its old value again. ``version`` is bumped by every scrape that commits; two
    meters scraping one cell at once cannot both commit (the second fails on the stale version
    and bills nothing).
    """

    __tablename__ = "usage_sources"

    cell_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    counter_total: Mapped[int] = mapped_column(BigInteger)
    scraped_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column()

    __mapper_args__: dict[str, Any] = {"version_id_col": version}  # noqa: RUF012
