"""Invoice finalization by two real processes on one PostgreSQL database: every month of
every account is finalized by exactly one of them and every credit is spent exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.models import Account, Credit, Invoice, InvoiceStatus

MARCH = dt.datetime(2027, 3, 1, tzinfo=dt.UTC)
# Past March's grace period: both processes finalize March (and draft April).
NOW = dt.datetime(2027, 4, 20, tzinfo=dt.UTC)
ACCOUNTS = [f"racer{i:02d}" for i in range(20)]
PROCESS = Path(__file__).with_name("billing_cycle_process.py")
ROOT = Path(__file__).resolve().parents[2]


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        for account_id in ACCOUNTS:
            session.add(Account(id=account_id, name=account_id, created_at=MARCH))
            session.add(
                Credit(id=f"c-{account_id}", account_id=account_id, description="c",
                       amount=Decimal("60.00"), remaining=Decimal("60.00"), expires_at=None,
                       created_at=MARCH)
            )  # fmt: skip


async def test_two_processes_finalize_each_invoice_once(pg_url: str, tmp_path: Path) -> None:
    """Both processes run the cycle at the same moment over 20 accounts; the one that loses a
    race on an invoice rolls back and retries. Each March invoice is finalized once, in total,
    and each account's credit of 60.00 pays 60.00 of its 100.00 fee, once."""
    engine = create_engine(pg_url)
    sessions = create_sessionmaker(engine)
    try:
        await _seed(sessions)
        go = tmp_path / "go"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(PROCESS),
                pg_url,
                NOW.isoformat(),
                str(go),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        go.touch()
        outputs = await asyncio.wait_for(
            asyncio.gather(*(process.communicate() for process in processes)), 120
        )
        for process, (_, err) in zip(processes, outputs, strict=True):
            assert process.returncode == 0, err.decode()
        reports = [json.loads(out) for out, _ in outputs]
        finalized = Counter(tuple(item) for report in reports for item in report["finalized"])
        assert finalized == Counter({(a, MARCH.date().isoformat()): 1 for a in ACCOUNTS})
        async with sessions() as session:
            invoices = (
                (await session.execute(select(Invoice).where(Invoice.period_start == MARCH)))
                .scalars()
                .all()
            )
            credits = (await session.execute(select(Credit))).scalars().all()
        assert sorted(invoice.account_id for invoice in invoices) == ACCOUNTS
        assert {invoice.status for invoice in invoices} == {InvoiceStatus.FINALIZED}
        assert {invoice.total for invoice in invoices} == {Decimal("40.00")}
        assert {credit.remaining for credit in credits} == {Decimal("0.00")}
    finally:
        await engine.dispose()
