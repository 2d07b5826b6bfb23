"""The operator's console in a real browser: the operator's one-time link (as `stratus up`
prints and `stratus console` with the operator key gives) → accounts → an account → a credit
granted; the plans and a namespace's rate-limit page; axe-core finds no serious or critical
violation on any of them, none scrolls sideways at 390 px, and the CSP blocks nothing."""

from __future__ import annotations

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
from support import StratusUp, new_tenant

pytestmark = pytest.mark.sqlite_only


def test_operator_journey_in_chromium(stratus: StratusUp, tmp_path: Path) -> None:
    tenant = new_tenant(stratus, "Overseen")
    with tenant.client(stratus) as client:
        namespace_id = client.create_namespace(
            "watched", tenant.ca.cert_pem.decode(), retention_days=7
        ).namespace.id
    with chromium() as browser:
        page, csp_reports = console_page(browser)
        sign_in_by_link(page, stratus, stratus.operator_key, "**/operator/accounts")
        assert page.get_by_text("operator of this installation").count() == 1
        screenshot(page, tmp_path, "operator-accounts")
        assert serious_violations(page) == []

        page.get_by_role("link", name=tenant.account_id).click()
        page.wait_for_url(f"**/operator/accounts/{tenant.account_id}")
        page.get_by_label("Amount (USD)").fill("125.50")
        page.get_by_label("Description").fill("launch credit")
        page.get_by_role("button", name="Grant credit").click()
        page.wait_for_url(f"**/operator/accounts/{tenant.account_id}#credits")
        row = page.locator("#credits tbody tr", has_text="launch credit")
        assert row.locator("td").nth(1).inner_text() == "125.50"
        screenshot(page, tmp_path, "operator-account", full_page=True)
        assert serious_violations(page) == []

        page.get_by_role("link", name=namespace_id).click()
        page.wait_for_url(f"**/operator/namespaces/{namespace_id}")
        screenshot(page, tmp_path, "operator-namespace")
        assert serious_violations(page) == []
        page.get_by_role("link", name="Plans").click()
        page.wait_for_url("**/operator/plans")
        screenshot(page, tmp_path, "operator-plans", full_page=True)
        assert serious_violations(page) == []

        page.set_viewport_size({"width": 390, "height": 844})
        for path in (
            "/operator/accounts",
            f"/operator/accounts/{tenant.account_id}",
            "/operator/plans",
            f"/operator/namespaces/{namespace_id}",
        ):
            page.goto(stratus.api_url + path)
            assert_no_sideways_scroll(page, path)
            assert serious_violations(page) == []
        screenshot(page, tmp_path, "operator-namespace-390", full_page=True)
    assert csp_reports == []
