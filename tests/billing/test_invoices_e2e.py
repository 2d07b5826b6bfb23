"""Invoices through the API and the CLI, rated by the billing cycle from usage rows with the
default price book: a draft re-rated with late usage, finalized after the grace period (credits
consumed once, then immutable), corrected by a credit note; a mid-month plan change; the
roles that may read invoices and the refusals. Every amount is worked out by hand below.

The month billed is the first 31-day month after the accounts were created, so each account
is active the whole month whatever day the suite runs."""

from __future__ import annotations

import asyncio
import calendar
import csv
import datetime as dt
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from billing_support import bill, record_usage, settings_of
from identity_support import assert_problem, user_with_key
from product_constants import INVOICE_GRACE as GRACE
from sqlalchemy import select
from support import StratusUp, Tenant, http, new_tenant

from controlplane.invoices.cycle import month_start, next_month
from controlplane.kit.db import create_engine, create_sessionmaker, utcnow
from controlplane.models import FinalizedInvoiceChanged, Invoice

D = Decimal
GB = 10**9


def _billed_month() -> dt.datetime:
    month = next_month(month_start(utcnow()))
    while calendar.monthrange(month.year, month.month)[1] != 31:
        month = next_month(month)
    return month


MONTH = _billed_month()
MONTH_END = next_month(MONTH)


def at(day: int, hour: int = 0) -> dt.datetime:
    return MONTH.replace(day=day, hour=hour)


@pytest.fixture(scope="module")
def ledger(stratus: StratusUp) -> tuple[Tenant, Tenant]:
    """Tenant "Ledger" with usage in two namespaces and a 50.00 credit; tenant "Other" with
    usage of its own in the same month."""
    tenant, other = new_tenant(stratus, "Ledger"), new_tenant(stratus, "Other")
    orders, reports = f"orders.{tenant.account_id}", f"reports.{tenant.account_id}"
    asyncio.run(
        record_usage(
            stratus,
            [
                (orders, at(2, 10), "actions.workflow", 1_500_000),
                (orders, at(3, 11), "actions.activity", 2_000_000),
                (reports, at(5), "actions.signal", 500_000),
                (reports, at(5), "storage.active", 1_000 * GB),
                (f"orders.{other.account_id}", at(2, 10), "actions.workflow", 9_000_000),
                (orders, MONTH_END, "actions.workflow", 777),  # next month: not this invoice
            ],
        )
    )
    with http(stratus, stratus.operator_key) as operator:
        granted = operator.post(
            f"/accounts/{tenant.account_id}/credits",
            json={"amount": "50.00", "description": "welcome credit"},
        )
        assert granted.status_code == 201, granted.text
    return tenant, other


def _invoices(stratus: StratusUp, api_key: str) -> list[dict[str, Any]]:
    with http(stratus, api_key) as client:
        response = client.get("/invoices")
    assert response.status_code == 200, response.text
    invoices: list[dict[str, Any]] = response.json()["invoices"]
    return invoices


def _invoice(stratus: StratusUp, api_key: str) -> dict[str, Any]:
    (summary,) = [i for i in _invoices(stratus, api_key) if i["period_start"] == str(MONTH.date())]
    with http(stratus, api_key) as client:
        response = client.get(f"/invoices/{summary['id']}")
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


def _charges(invoice: dict[str, Any]) -> list[tuple[str, str]]:
    return [(line["kind"], line["amount"]) for line in invoice["lines"]]


def test_draft_invoice_rates_the_month_with_tiers_included_amounts_storage_and_credits(
    stratus: StratusUp, ledger: tuple[Tenant, Tenant]
) -> None:
    """Essentials (default plan), whole month: fee 100.00. Actions 1.5M + 2M + 0.5M = 4M, the
    first 1M included: 3M in tier 1 at 50/M = 150.00. Active storage 1,000 GB-h − 720
    included = 280 × 0.042 = 11.76. Subtotal 261.76; the 50.00 credit → total 211.76.
    The 150.00 of actions is shared by quantity: 56.25 / 75.00 / 18.75."""
    tenant, _ = ledger
    asyncio.run(bill(stratus, now=at(15), account_ids=[tenant.account_id], month=MONTH))
    invoice = _invoice(stratus, tenant.api_key)
    assert invoice["status"] == "DRAFT"
    assert invoice["plan"] == "essentials"
    assert (invoice["period_start"], invoice["period_end"]) == (
        str(MONTH.date()),
        str(at(31).date()),
    )
    assert _charges(invoice) == [
        ("plan_fee", "100.00"),
        ("actions", "150.00"),
        ("storage.active", "11.76"),
    ]
    assert (invoice["subtotal"], invoice["credits_applied"], invoice["total"]) == (
        "261.76",
        "50.00",
        "211.76",
    )
    orders, reports = f"orders.{tenant.account_id}", f"reports.{tenant.account_id}"
    assert [
        (u["namespace_id"], u["kind"], u["quantity"], u["amount"]) for u in invoice["usage"]
    ] == [
        (orders, "actions.activity", "2000000", "75.00"),
        (orders, "actions.workflow", "1500000", "56.25"),
        (reports, "actions.signal", "500000", "18.75"),
        (reports, "storage.active", str(1_000 * GB), "11.76"),
    ]
    # A draft only projects the credit: nothing is consumed before finalization.
    with http(stratus, tenant.api_key) as client:
        (credit,) = client.get("/billing/credits").json()["credits"]
    assert credit["remaining"] == "50.00"


def test_late_usage_rerates_the_draft_until_the_grace_period_ends_then_it_is_final(
    stratus: StratusUp, ledger: tuple[Tenant, Tenant]
) -> None:
    """1M more actions in the last hour of the month arrive late: actions 5M → 4M billable
    → 200.00; subtotal 311.76, total 261.76. One hour before the grace period ends it is still
    a draft; one hour after, it is finalized and the credit is spent (remaining 0.00). Usage
    arriving after that changes nothing: the finalized invoice is the same, byte for byte."""
    tenant, _ = ledger
    orders = f"orders.{tenant.account_id}"
    asyncio.run(record_usage(stratus, [(orders, at(31, 23), "actions.workflow", 1_000_000)]))
    asyncio.run(
        bill(stratus, now=MONTH_END + GRACE - dt.timedelta(hours=1),
             account_ids=[tenant.account_id], month=MONTH)
    )  # fmt: skip
    draft = _invoice(stratus, tenant.api_key)
    assert draft["status"] == "DRAFT"
    assert _charges(draft)[1] == ("actions", "200.00")
    assert (draft["subtotal"], draft["total"]) == ("311.76", "261.76")

    finalized_at = MONTH_END + GRACE + dt.timedelta(hours=1)
    report = asyncio.run(
        bill(stratus, now=finalized_at, account_ids=[tenant.account_id], month=MONTH)
    )
    assert report.finalized == [(tenant.account_id, MONTH.date())]
    final = _invoice(stratus, tenant.api_key)
    assert final["status"] == "FINALIZED"
    assert (final["subtotal"], final["total"], final["amount_due"]) == (
        "311.76",
        "261.76",
        "261.76",
    )
    assert [(a["amount"], a["remaining"]) for a in final["credit_applications"]] == [
        ("50.00", "0.00")
    ]
    with http(stratus, tenant.api_key) as client:
        (credit,) = client.get("/billing/credits").json()["credits"]
    assert credit["remaining"] == "0.00"

    asyncio.run(record_usage(stratus, [(orders, at(31, 23), "actions.workflow", 5_000_000)]))
    again = asyncio.run(
        bill(stratus, now=finalized_at + dt.timedelta(days=1),
             account_ids=[tenant.account_id], month=MONTH)
    )  # fmt: skip
    assert again.finalized == []
    assert again.drafted == []
    assert _invoice(stratus, tenant.api_key) == final


def test_a_finalized_invoice_cannot_be_changed_in_the_database(
    stratus: StratusUp, ledger: tuple[Tenant, Tenant]
) -> None:
    """Even code with a session cannot alter or delete a finalized invoice: the flush refuses."""
    tenant, _ = ledger

    async def tamper(delete: bool) -> None:
        engine = create_engine(settings_of(stratus).sqlalchemy_url)
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                invoice = (
                    await session.execute(
                        select(Invoice).where(
                            Invoice.account_id == tenant.account_id,
                            Invoice.period_start == MONTH,
                        )
                    )
                ).scalar_one()
                if delete:
                    await session.delete(invoice)
                else:
                    invoice.total = D("0.00")
                await session.flush()
        finally:
            await engine.dispose()

    for delete in (False, True):
        with pytest.raises(FinalizedInvoiceChanged, match="finalized"):
            asyncio.run(tamper(delete))
    assert _invoice(stratus, tenant.api_key)["total"] == "261.76"


def test_credit_notes_correct_a_finalized_invoice(
    stratus: StratusUp, ledger: tuple[Tenant, Tenant]
) -> None:
    """The operator issues 11.76 (the storage line) as a credit note: amount due 250.00, the
    invoice's own total unchanged. More than what is still due is refused (400 on amount);
    tenants cannot issue credit notes (403). The note is audited."""
    tenant, _ = ledger
    invoice_id = _invoice(stratus, tenant.api_key)["id"]
    with http(stratus, stratus.operator_key) as operator:
        too_much = operator.post(
            f"/invoices/{invoice_id}/credit-notes", json={"amount": "261.77", "reason": "x"}
        )
        assert_problem(too_much, 400, "invalid-field")
        assert too_much.json()["field"] == "amount"
        for bad in ("0", "-5", "1.234", "ten"):
            response = operator.post(
                f"/invoices/{invoice_id}/credit-notes", json={"amount": bad, "reason": "x"}
            )
            assert_problem(response, 400, "invalid-field")
        note = operator.post(
            f"/invoices/{invoice_id}/credit-notes",
            json={"amount": "11.76", "reason": "storage metered twice in an incident"},
        )
        assert note.status_code == 201, note.text
        unknown = operator.post(
            "/invoices/zz-unknown/credit-notes", json={"amount": "1.00", "reason": "x"}
        )
        assert_problem(unknown, 404, "not-found")
    with http(stratus, tenant.api_key) as client:
        forbidden = client.post(
            f"/invoices/{invoice_id}/credit-notes", json={"amount": "1.00", "reason": "x"}
        )
        assert_problem(forbidden, 403, "forbidden")
        events = client.get("/audit-logs").json()["audit_logs"]
    invoice = _invoice(stratus, tenant.api_key)
    assert (invoice["total"], invoice["amount_due"]) == ("261.76", "250.00")
    assert [(n["amount"], n["reason"]) for n in invoice["credit_notes"]] == [
        ("11.76", "storage metered twice in an incident")
    ]
    actions = {event["action"] for event in events}
    assert {"credit.grant", "invoice.finalize", "invoice.credit_note.create"} <= actions


def test_a_credit_note_on_a_draft_is_refused(stratus: StratusUp) -> None:
    """Drafts are still re-rated: correcting one is a 409 conflict."""
    tenant = new_tenant(stratus, "Drafty")
    asyncio.run(bill(stratus, now=at(3), account_ids=[tenant.account_id], month=MONTH))
    invoice_id = _invoice(stratus, tenant.api_key)["id"]
    with http(stratus, stratus.operator_key) as operator:
        response = operator.post(
            f"/invoices/{invoice_id}/credit-notes", json={"amount": "1.00", "reason": "early"}
        )
    assert_problem(response, 409, "conflict")


def test_downloads_as_json_and_as_csv_that_adds_up_to_the_amount_due(
    stratus: StratusUp, ledger: tuple[Tenant, Tenant]
) -> None:
    """JSON is the API's invoice; in the CSV, BilledCost of charges, the credit and the credit
    note adds up to the amount due (250.00), and AllocatedCost of the usage rows to the usage
    charges (200.00 + 11.76)."""
    tenant, _ = ledger
    invoice = _invoice(stratus, tenant.api_key)
    with http(stratus, tenant.api_key) as client:
        as_json = client.get(f"/invoices/{invoice['id']}/download", params={"format": "json"})
        as_csv = client.get(f"/invoices/{invoice['id']}/download", params={"format": "csv"})
        bad = client.get(f"/invoices/{invoice['id']}/download", params={"format": "pdf"})
    assert json.loads(as_json.content) == invoice
    assert "attachment" in as_json.headers["content-disposition"]
    assert as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    billed = sum((D(row["BilledCost"]) for row in rows if row["BilledCost"]), D(0))
    allocated = sum((D(row["AllocatedCost"]) for row in rows if row["AllocatedCost"]), D(0))
    assert billed == D("250.00")
    assert allocated == D("211.76")
    assert {row["LineType"] for row in rows} == {"charge", "credit", "credit_note", "usage"}
    assert_problem(bad, 400, "invalid-field")


def test_only_owners_and_finance_admins_read_invoices_and_never_another_accounts(
    stratus: StratusUp, ledger: tuple[Tenant, Tenant]
) -> None:
    """finance_admin reads the invoice; admin and developer get 403; the other account's owner
    gets 404 for it, exactly as for an unknown id, and sees only its own invoices."""
    tenant, other = ledger
    invoice_id = _invoice(stratus, tenant.api_key)["id"]
    _, finance = user_with_key(stratus, tenant.api_key, "money@ledger.example", "finance_admin")
    _, admin = user_with_key(stratus, tenant.api_key, "boss@ledger.example", "admin")
    with http(stratus, finance) as client:
        assert client.get(f"/invoices/{invoice_id}").json()["total"] == "261.76"
    with http(stratus, admin) as client:
        assert_problem(client.get("/invoices"), 403, "forbidden")
        assert_problem(client.get(f"/invoices/{invoice_id}"), 403, "forbidden")
    asyncio.run(bill(stratus, now=at(10), account_ids=[other.account_id], month=MONTH))
    with http(stratus, other.api_key) as client:
        assert_problem(client.get(f"/invoices/{invoice_id}"), 404, "not-found")
        assert_problem(client.get(f"/invoices/{invoice_id}/download"), 404, "not-found")
        assert_problem(client.get("/invoices/zz-unknown"), 404, "not-found")
        (own,) = client.get("/invoices").json()["invoices"]
    assert own["account_id"] == other.account_id
    # Other: 9M actions, 8M billable: 4M × 50 + 4M × 45 = 380.00, + fee 100.00.
    assert own["subtotal"] == "480.00"


def test_a_mid_month_plan_change_prorates_each_plan(stratus: StratusUp) -> None:
    """Essentials for days 1-15, business from day 16 (of 31). Actions: 3M on day 10, 4M on
    day 20.
    Essentials, 15/31: fee 100 × 15/31 = 48.387… → 48.39; included ⌊1,000,000 × 15/31⌋ =
    483,870; 3,000,000 − 483,870 = 2,516,130 in tier 1: 2.51613 × 50 = 125.8065 → 125.81.
    Business, 16/31: included ⌊2,500,000 × 16/31⌋ = 1,290,322; its actions are the month's
    3M-7M, billable from 4,290,322: tier 1 to 5M 709,678 × 50/M = 35.4839 → 35.48; tier 2
    2M × 45 = 90.00; fee 10% of 125.48 = 12.55 < minimum 500 × 16/31 = 258.06 → 258.06.
    Subtotal 48.39 + 258.06 + 125.81 + 35.48 + 90.00 = 557.74."""
    tenant = new_tenant(stratus, "Switch")
    with http(stratus, stratus.operator_key) as operator:
        changed = operator.post(
            f"/accounts/{tenant.account_id}/plan",
            json={"plan": "business", "effective_from": str(at(16).date())},
        )
        assert changed.status_code == 200, changed.text
        assert_problem(
            operator.post(f"/accounts/{tenant.account_id}/plan", json={"plan": "platinum"}),
            400,
            "invalid-field",
        )
        assert_problem(
            operator.post("/accounts/zzunknown/plan", json={"plan": "business"}),
            404,
            "not-found",
        )
    namespace = f"jobs.{tenant.account_id}"
    asyncio.run(
        record_usage(
            stratus,
            [
                (namespace, at(10), "actions.workflow", 3_000_000),
                (namespace, at(20), "actions.workflow", 4_000_000),
            ],
        )
    )
    asyncio.run(bill(stratus, now=at(25), account_ids=[tenant.account_id], month=MONTH))
    invoice = _invoice(stratus, tenant.api_key)
    assert invoice["plan"] == "essentials → business"
    assert _charges(invoice) == [
        ("plan_fee", "48.39"),
        ("plan_fee", "258.06"),
        ("actions", "125.81"),
        ("actions", "35.48"),
        ("actions", "90.00"),
    ]
    assert invoice["subtotal"] == "557.74"
    assert [line["description"] for line in invoice["lines"]][2:] == [
        "Actions, tier 1 (0M-5M), days 1-15",
        "Actions, tier 1 (0M-5M), days 16-31",
        "Actions, tier 2 (5M-10M), days 16-31",
    ]
    with http(stratus, tenant.api_key) as client:
        plan = client.get("/billing/plan").json()
    assert plan["history"] == [{"plan": "business", "effective_from": str(at(16).date())}]


def test_cli_lists_gets_and_downloads_invoices(
    stratus: StratusUp, ledger: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    """``stratus invoice list|get|download`` as the owner sees them."""
    tenant, _ = ledger
    invoice_id = _invoice(stratus, tenant.api_key)["id"]
    listed = stratus.cli("invoice", "list", api_key=tenant.api_key)
    assert listed.returncode == 0, listed.stderr
    assert f"{invoice_id}\t{MONTH:%Y-%m}\tFINALIZED\t250.00 USD" in listed.stdout
    shown = stratus.cli("invoice", "get", invoice_id, api_key=tenant.api_key)
    assert shown.returncode == 0, shown.stderr
    assert "Actions, tier 1 (0M-5M)" in shown.stdout
    assert "250.00  amount due" in shown.stdout
    out = tmp_path / "invoice.csv"
    downloaded = stratus.cli(
        "invoice", "download", invoice_id, "--format", "csv", "--out", str(out),
        api_key=tenant.api_key,
    )  # fmt: skip
    assert downloaded.returncode == 0, downloaded.stderr
    assert out.read_text().startswith("BillingAccountId,InvoiceId,")
    as_json = stratus.cli("invoice", "download", invoice_id, api_key=tenant.api_key)
    assert json.loads(as_json.stdout)["id"] == invoice_id
    missing = stratus.cli("invoice", "get", "zz-unknown", api_key=tenant.api_key)
    assert missing.returncode == 1
    assert "404" in missing.stderr
