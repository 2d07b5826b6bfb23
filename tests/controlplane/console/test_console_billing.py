"""The console's usage and invoice pages over HTTP against a real Stratus, with usage rows
written through the meter's own store and the month rated by the billing cycle (injected
clock): the usage page's SVG, its table and the API's usage agree, the plan's included amounts
and the draft invoice's projected cost are shown; invoice downloads are the API's own files;
finance admins read billing, other roles see no entry and are refused; another account's
invoice is the same "not found" page as an unknown one."""

from __future__ import annotations

import asyncio
import calendar
import csv
import datetime as dt
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from billing_support import bill, record_usage
from console_support import all_signed_in, html_page
from identity_support import user_with_key
from support import StratusUp, Tenant, http, new_tenant

from controlplane.invoices.cycle import month_start, next_month
from controlplane.kit.db import utcnow

NOT_FOUND_TEXT = "This page does not exist, or you do not have access to it."
GB = 10**9


def _billed_month() -> dt.datetime:
    """The first 31-day month after today: the accounts are active the whole month, and the
    worker's own cycles (on the real clock) never rate it."""
    month = next_month(month_start(utcnow()))
    while calendar.monthrange(month.year, month.month)[1] != 31:
        month = next_month(month)
    return month


MONTH = _billed_month()
MONTH_PARAM = MONTH.strftime("%Y-%m")


def at(day: int, hour: int = 0) -> dt.datetime:
    return MONTH.replace(day=day, hour=hour)


@dataclass
class Billed:
    tenant: Tenant
    other: Tenant
    orders: str
    reports: str
    owner: httpx.Client
    finance: httpx.Client
    admin: httpx.Client
    reader: httpx.Client


@pytest.fixture(scope="module")
def billed(stratus: StratusUp) -> Iterator[Billed]:
    """Tenant "Tallied" with actions in two namespaces over three days and active storage,
    its month rated as a draft on day 15; tenant "Untallied" with usage and an invoice of its
    own in the same month."""
    tenant, other = new_tenant(stratus, "Tallied"), new_tenant(stratus, "Untallied")
    orders, reports = f"orders.{tenant.account_id}", f"reports.{tenant.account_id}"
    asyncio.run(
        record_usage(
            stratus,
            [
                (orders, at(2, 10), "actions.workflow", 1_500_000),
                (orders, at(2, 11), "actions.activity", 700_000),
                (orders, at(3, 11), "actions.activity", 1_300_000),
                (reports, at(5), "actions.signal", 500_000),
                (reports, at(5), "storage.active", 600 * GB),
                (reports, at(6), "storage.active", 400 * GB),
                (f"orders.{other.account_id}", at(2, 10), "actions.workflow", 9_000_000),
            ],
        )
    )
    for account in (tenant, other):
        asyncio.run(bill(stratus, now=at(15), account_ids=[account.account_id], month=MONTH))
    _, finance_key = user_with_key(
        stratus, tenant.api_key, "money@tallied.example", "finance_admin"
    )
    _, admin_key = user_with_key(stratus, tenant.api_key, "admin@tallied.example", "admin")
    _, read_key = user_with_key(stratus, tenant.api_key, "reader@tallied.example", "read")
    with all_signed_in(stratus, tenant.api_key, finance_key, admin_key, read_key) as clients:
        yield Billed(tenant, other, orders, reports, *clients)


def _section(page: str, start: str, end: str) -> str:
    return page[page.index(start) : page.index(end, page.index(start))]


def _bars(svg: str) -> dict[tuple[str, str], int]:
    return {
        (day, kind): int(quantity)
        for day, kind, quantity in re.findall(
            r'<rect [^>]*data-day="([^"]+)" data-kind="([^"]+)" data-quantity="(\d+)"', svg
        )
    }


def _table(table: str) -> dict[tuple[str, str], str]:
    kinds = re.findall(r'<th scope="col"[^>]*>([a-z_.]+)</th>', table)
    cells: dict[tuple[str, str], str] = {}
    for day, row in re.findall(r'<tr data-day="([^"]+)">(.*?)</tr>', table):
        values = re.findall(r'<td class="num">([^<]*)</td>', row)
        for kind, value in zip(kinds, values, strict=False):
            cells[(day, kind)] = value
    return cells


def _api_invoice(stratus: StratusUp, api_key: str) -> dict[str, Any]:
    with http(stratus, api_key) as client:
        listed = client.get("/invoices").json()["invoices"]
        (summary,) = [i for i in listed if i["period_start"] == str(MONTH.date())]
        response = client.get(f"/invoices/{summary['id']}")
    assert response.status_code == 200, response.text
    invoice: dict[str, Any] = response.json()
    return invoice


def test_usage_page_draws_the_months_usage_as_the_api_counts_it(
    stratus: StratusUp, billed: Billed
) -> None:
    """Day 2: workflow 1,500,000 + activity 700,000; day 3: activity 1,300,000; day 5: signal
    500,000 and 600 GB-h active; day 6: 400 GB-h active. The SVG's bars, the table beside them
    and ``GET /api/v1/usage`` carry the same figures; the other account's never appear."""
    page = html_page(billed.owner.get("/usage", params={"month": MONTH_PARAM}))
    with http(stratus, billed.tenant.api_key) as api:
        last = MONTH.replace(day=31).date().isoformat()
        usage = api.get("/usage", params={"start": str(MONTH.date()), "end": last}).json()
    per_day: dict[tuple[str, str], int] = {}
    for row in usage["usage"]:
        key = (row["date"], row["kind"])
        per_day[key] = per_day.get(key, 0) + row["quantity"]
    actions = {key: q for key, q in per_day.items() if key[1].startswith("actions.")}
    storage = {key: q for key, q in per_day.items() if key[1].startswith("storage.")}
    d2, d3, d5, d6 = (at(day).date().isoformat() for day in (2, 3, 5, 6))
    assert actions == {
        (d2, "actions.workflow"): 1_500_000,
        (d2, "actions.activity"): 700_000,
        (d3, "actions.activity"): 1_300_000,
        (d5, "actions.signal"): 500_000,
    }

    actions_svg = _section(page, '<svg class="chart" id="actions-per-day"', "</svg>")
    assert 'role="img"' in actions_svg
    assert "<desc" in actions_svg
    assert _bars(actions_svg) == actions
    actions_table = _section(page, 'id="actions-per-day-table"', "</table>")
    assert _table(actions_table) == {
        (d2, "actions.activity"): "700,000",
        (d2, "actions.signal"): "0",
        (d2, "actions.workflow"): "1,500,000",
        (d3, "actions.activity"): "1,300,000",
        (d3, "actions.signal"): "0",
        (d3, "actions.workflow"): "0",
        (d5, "actions.activity"): "0",
        (d5, "actions.signal"): "500,000",
        (d5, "actions.workflow"): "0",
    }
    storage_svg = _section(page, '<svg class="chart" id="storage-per-day"', "</svg>")
    assert (
        _bars(storage_svg)
        == storage
        == {
            (d5, "storage.active"): 600 * GB,
            (d6, "storage.active"): 400 * GB,
        }
    )
    assert _table(_section(page, 'id="storage-per-day-table"', "</table>")) == {
        (d5, "storage.active"): "600.00",
        (d6, "storage.active"): "400.00",
    }

    namespaces = _section(page, 'id="namespace-table"', "</table>")
    assert re.search(
        rf'data-namespace="{re.escape(billed.orders)}">.*?3,500,000</td>'
        r'<td class="num">0.00</td>',
        namespaces,
    )
    assert re.search(
        rf'data-namespace="{re.escape(billed.reports)}">.*?500,000</td>'
        r'<td class="num">1000.00</td>',
        namespaces,
    )
    namespace_svg = _section(page, '<svg class="chart" id="actions-per-namespace"', "</svg>")
    assert re.findall(r'data-namespace="([^"]+)" data-quantity="(\d+)"', namespace_svg) == [
        (billed.orders, "3500000"),
        (billed.reports, "500000"),
    ]
    assert billed.other.account_id not in page
    assert "9,000,000" not in page


def test_usage_page_sets_the_month_against_the_plan_and_the_drafts_projected_cost(
    stratus: StratusUp, billed: Billed
) -> None:
    """Essentials (the default plan): 4,000,000 actions of 1,000,000 included, 1,000 GB-h
    active of 720 included; the projected cost is the draft invoice's total as the billing
    cycle rated it (fee 100.00 + 3M actions × 50/M + 280 GB-h × 0.042 = 261.76)."""
    page = html_page(billed.owner.get("/usage", params={"month": MONTH_PARAM}))
    invoice = _api_invoice(stratus, billed.tenant.api_key)
    assert invoice["total"] == "261.76"
    assert '<span id="plan-name">essentials</span>' in page
    allowances = _section(page, 'id="allowances"', "</table>")
    assert re.search(
        r"Actions \(actions\)</th>\s*<td[^>]*>4,000,000</td>\s*<td[^>]*>1,000,000<", allowances
    )
    assert re.search(
        r"Active storage \(GB-hours\)</th>\s*<td[^>]*>1000.00</td>\s*<td[^>]*>720<", allowances
    )
    projected = _section(page, 'id="projected"', "</dl>")
    assert "Projected cost" in projected
    assert f'<strong id="projected-total">{invoice["total"]} USD</strong>' in projected
    assert f'href="/invoices/{invoice["id"]}"' in projected


def test_an_unrated_month_and_a_malformed_month(billed: Billed) -> None:
    """A month without usage or invoice says so; a month that is not YYYY-MM is a 400 page
    naming the field, never a 500."""
    empty = html_page(billed.owner.get("/usage", params={"month": "2001-02"}))
    assert "No actions recorded in this month." in empty
    assert "has not rated this month yet" in empty
    for bad in ("2026-13", "soon", "1999-12"):
        refused = html_page(billed.owner.get("/usage", params={"month": bad}), 400)
        assert "month must be YYYY-MM" in refused


def test_invoice_list_detail_and_downloads_are_the_apis(stratus: StratusUp, billed: Billed) -> None:
    """The list and detail show the API's figures; the CSV and JSON downloads are attachments
    byte for byte equal to ``GET /api/v1/invoices/{id}/download``, the JSON equal to the
    invoice document, the CSV with its header row and the invoice's amounts as written."""
    invoice = _api_invoice(stratus, billed.tenant.api_key)
    listing = html_page(billed.owner.get("/invoices"))
    row = _section(listing, f'data-invoice="{invoice["id"]}"', "</tr>")
    assert "DRAFT" in row
    assert f"{invoice['total']} USD" in row
    detail = html_page(billed.owner.get(f"/invoices/{invoice['id']}"))
    for line in invoice["lines"]:
        assert f'<td class="num">{line["amount"]}</td>' in detail
    assert f"<strong>{invoice['amount_due']} USD</strong>" in detail
    assert 'download?format=csv"' in detail
    assert 'download?format=json"' in detail

    with http(stratus, billed.tenant.api_key) as api:
        for file_format in ("json", "csv"):
            path = f"/invoices/{invoice['id']}/download"
            ours = billed.owner.get(path, params={"format": file_format})
            theirs = api.get(path, params={"format": file_format})
            assert ours.status_code == theirs.status_code == 200, ours.text
            assert ours.content == theirs.content
            assert ours.headers["content-disposition"] == theirs.headers["content-disposition"]
            assert ours.headers["content-disposition"].startswith("attachment; filename=")
    as_json = billed.owner.get(f"/invoices/{invoice['id']}/download", params={"format": "json"})
    assert json.loads(as_json.content) == invoice
    as_csv = billed.owner.get(f"/invoices/{invoice['id']}/download", params={"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    charges = [(r["SkuId"], r["BilledCost"]) for r in rows if r["LineType"] == "charge"]
    assert charges == [(line["kind"], line["amount"]) for line in invoice["lines"]]
    bad = html_page(billed.owner.get(f"/invoices/{invoice['id']}/download?format=pdf"), 400)
    assert "format must be one of json, csv" in bad


def test_another_accounts_invoice_is_the_same_not_found_page(
    stratus: StratusUp, billed: Billed
) -> None:
    foreign = _api_invoice(stratus, billed.other.api_key)["id"]
    unknown = "00000000-0000-0000-0000-000000000000"
    for suffix in ("", "/download?format=json", "/download?format=csv"):
        foreign_page = billed.owner.get(f"/invoices/{foreign}{suffix}")
        unknown_page = billed.owner.get(f"/invoices/{unknown}{suffix}")
        assert html_page(foreign_page, 404) == html_page(unknown_page, 404)
        assert NOT_FOUND_TEXT in foreign_page.text
        assert foreign not in foreign_page.text
    assert foreign not in html_page(billed.owner.get("/invoices"))


def test_billing_pages_follow_the_policy(billed: Billed) -> None:
    """Owner and finance admin see Usage and Invoices; an admin and a read user see neither
    entry, and the pages answer 403 naming the action."""
    invoice_id = re.findall(r'data-invoice="([^"]+)"', html_page(billed.finance.get("/invoices")))[
        0
    ]
    for allowed in (billed.owner, billed.finance):
        page = html_page(allowed.get("/namespaces"))
        assert 'href="/usage"' in page
        assert 'href="/invoices"' in page
        assert html_page(allowed.get("/usage", params={"month": MONTH_PARAM}))
    for refused in (billed.admin, billed.reader):
        page = html_page(refused.get("/namespaces"))
        assert 'href="/usage"' not in page
        assert 'href="/invoices"' not in page
        for path, action in (
            ("/usage", "usage.read"),
            ("/invoices", "invoice.read"),
            (f"/invoices/{invoice_id}", "invoice.read"),
            (f"/invoices/{invoice_id}/download?format=csv", "invoice.read"),
        ):
            answer = html_page(refused.get(path), 403)
            assert f"this credential may not perform {action}" in answer
            assert "Not allowed" in answer
