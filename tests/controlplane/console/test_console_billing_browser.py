"""The usage, invoice and audit pages in a real browser (Debian's chromium, driven by
playwright): the usage chart renders as SVG, an invoice downloads through the browser as the
API's own file, the audit log is filtered from its form; axe-core finds no serious or critical
violation on any of them, a 390-px phone width does not scroll sideways, and the CSP blocks
nothing. Screenshots: "usage", "invoices", "invoice", "audit"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from billing_support import bill, record_usage
from console_support import (
    assert_no_sideways_scroll,
    chromium,
    console_link,
    screenshot,
    serious_violations,
)
from support import StratusUp, http, new_tenant
from test_console_billing import MONTH, MONTH_PARAM, at

pytestmark = pytest.mark.sqlite_only

GB = 10**9


def test_usage_invoices_and_audit_in_chromium(stratus: StratusUp, tmp_path: Path) -> None:
    tenant = new_tenant(stratus, "Charted")
    orders, reports = f"orders.{tenant.account_id}", f"reports.{tenant.account_id}"
    asyncio.run(
        record_usage(
            stratus,
            [
                (orders, at(day, 9), kind, quantity)
                for day in range(1, 32)
                for kind, quantity in (
                    ("actions.workflow", 20_000 + 700 * day),
                    ("actions.activity", 60_000 + 1_300 * (day % 9)),
                    ("actions.timer", 9_000 * (day % 4)),
                )
            ]
            + [(reports, at(day, 9), "actions.signal", 15_000) for day in range(5, 25)]
            + [(reports, at(day), "storage.active", (30 + day) * GB) for day in range(1, 32)],
        )
    )
    asyncio.run(bill(stratus, now=at(20), account_ids=[tenant.account_id], month=MONTH))
    with http(stratus, tenant.api_key) as api:
        (invoice,) = [
            i
            for i in api.get("/invoices").json()["invoices"]
            if i["period_start"] == str(MONTH.date())
        ]
        api_csv = api.get(f"/invoices/{invoice['id']}/download", params={"format": "csv"}).content

    csp_reports: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page.on(
            "console",
            lambda m: csp_reports.append(m.text) if "Content Security" in m.text else None,
        )
        page.goto(stratus.api_url + console_link(stratus, tenant.api_key))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/namespaces")

        page.get_by_role("link", name="Usage", exact=True).click()
        page.wait_for_url("**/usage")
        page.goto(f"{stratus.api_url}/usage?month={MONTH_PARAM}")
        chart = page.locator("svg#actions-per-day")
        chart.wait_for(state="visible")
        assert chart.get_attribute("role") == "img"
        # workflow and activity every day, timers on 24 days, signals on 20: no empty bars.
        assert chart.locator("rect").count() == 31 + 31 + 24 + 20
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 600
        assert box["height"] > 150
        assert page.locator("svg#storage-per-day rect").count() == 31
        assert page.locator("svg#actions-per-namespace rect").count() == 2
        screenshot(page, tmp_path, "usage", full_page=True)
        assert serious_violations(page) == []

        page.get_by_role("link", name="Invoices", exact=True).click()
        page.wait_for_url("**/invoices")
        screenshot(page, tmp_path, "invoices")
        assert serious_violations(page) == []
        page.get_by_role("link", name=MONTH.strftime("%B %Y")).click()
        page.wait_for_url(f"**/invoices/{invoice['id']}")
        screenshot(page, tmp_path, "invoice", full_page=True)
        assert serious_violations(page) == []
        with page.expect_download() as downloading:
            page.get_by_role("link", name="Download CSV").click()
        download = downloading.value
        assert download.suggested_filename.endswith(f"{invoice['id']}.csv")
        assert Path(download.path()).read_bytes() == api_csv

        page.get_by_role("link", name="Audit log", exact=True).click()
        page.wait_for_url("**/audit")
        page.get_by_label("Action").fill("console.sign_in_link.use")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/audit?*action=console.sign_in_link.use*")
        actions = page.locator("#audit-events tbody tr td:nth-child(3)").all_inner_texts()
        assert actions == ["console.sign_in_link.use"]
        screenshot(page, tmp_path, "audit")
        assert serious_violations(page) == []

        page.set_viewport_size({"width": 390, "height": 844})
        for path in (
            f"/usage?month={MONTH_PARAM}",
            "/invoices",
            f"/invoices/{invoice['id']}",
            "/audit",
        ):
            page.goto(stratus.api_url + path)
            assert_no_sideways_scroll(page, path)
            assert serious_violations(page) == []
        screenshot(page, tmp_path, "audit-390", full_page=True)
    assert csp_reports == []
