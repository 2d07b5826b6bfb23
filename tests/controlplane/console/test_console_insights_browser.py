"""The insights page in a real browser (Debian's chromium via playwright): reached from the
namespace detail page, the window switched with the keyboard; axe-core finds no serious or
critical violation, the CSP blocks nothing, no sideways scroll at 390 px. Screenshot
"insights"."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from console_support import (
    assert_no_sideways_scroll,
    chromium,
    console_page,
    screenshot,
    serious_violations,
    sign_in_by_link,
)
from insights_support import seed_findings
from support import StratusUp, create_active_namespace, new_tenant

pytestmark = pytest.mark.sqlite_only


def test_insights_page_from_the_namespace(stratus: StratusUp, tmp_path: Path) -> None:
    tenant = new_tenant(stratus, "Shown")
    ns = create_active_namespace(stratus, tenant, "payments")
    asyncio.run(seed_findings(stratus, ns))
    with chromium() as browser:
        page, csp_reports = console_page(browser)
        sign_in_by_link(page, stratus, tenant.api_key, "**/namespaces")
        page.goto(f"{stratus.api_url}/namespaces/{ns}")
        page.get_by_role("link", name="Insights").click()
        page.wait_for_url(f"**/namespaces/{ns}/insights")
        assert page.get_by_role("cell", name="Critical").count() == 1
        screenshot(page, tmp_path, "insights", full_page=True)
        assert serious_violations(page) == []

        page.get_by_role("link", name="Last 7 days", exact=True).focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/insights?window=7d")
        assert page.get_by_text("No findings over the last 7 days.").count() == 1
        assert serious_violations(page) == []

        page.set_viewport_size({"width": 390, "height": 844})
        path = f"/namespaces/{ns}/insights"
        page.goto(stratus.api_url + path)
        assert_no_sideways_scroll(page, path)
    assert csp_reports == []
