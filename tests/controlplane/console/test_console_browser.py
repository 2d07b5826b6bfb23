"""The console in a real browser (Debian's chromium, driven by playwright; never
`playwright install`): a one-time link signs the tenant's owner in, a namespace is created by
uploading a CA file, its row turns ACTIVE without a reload (htmx), its detail page opens, a
390-px phone width does not scroll sideways, axe-core finds no serious or critical violation,
and the CSP blocks nothing. Screenshots go to the test's tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_support import (
    assert_no_sideways_scroll,
    chromium,
    console_link,
    screenshot,
    serious_violations,
)
from support import StratusUp, new_tenant

pytestmark = pytest.mark.sqlite_only


def test_console_journey_in_chromium(stratus: StratusUp, tmp_path: Path) -> None:
    tenant = new_tenant(stratus, "Browsed")
    ca_file = tmp_path / "tenant-ca.pem"
    ca_file.write_bytes(tenant.ca.cert_pem)
    namespace_id = f"clicked.{tenant.account_id}"
    csp_reports: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console",
            lambda m: csp_reports.append(m.text) if "Content Security" in m.text else None,
        )
        page.goto(stratus.api_url + console_link(stratus, tenant.api_key))
        screenshot(page, tmp_path, "sign-in-link")
        assert serious_violations(page) == []
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/namespaces")
        page.get_by_role("link", name="Create namespace").click()
        page.wait_for_url("**/namespaces/new")
        assert serious_violations(page) == []
        page.get_by_label("Name").fill("clicked")
        page.get_by_label("Retention (days)").fill("7")
        page.get_by_label("CA certificates file (PEM)").set_input_files(ca_file)
        screenshot(page, tmp_path, "namespace-new")
        page.get_by_role("button", name="Create namespace").click()
        page.wait_for_url(f"**/namespaces/{namespace_id}")

        page.goto(stratus.api_url + "/namespaces")
        page.evaluate("window.notReloaded = true")
        row = page.locator("#namespace-rows tr", has_text=namespace_id)
        # The account's first namespace waits for its cell to start: seconds, so the list
        # shows it still activating, and only htmx's polling can show it ACTIVE.
        assert row.locator("[data-state]").get_attribute("data-state") != "ACTIVE"
        row.locator('[data-state="ACTIVE"]').wait_for(timeout=120_000)
        assert page.evaluate("window.notReloaded === true")  # htmx swapped the rows
        screenshot(page, tmp_path, "namespaces")
        assert serious_violations(page) == []

        row.get_by_role("link", name=namespace_id).click()
        page.wait_for_url(f"**/namespaces/{namespace_id}")
        assert page.get_by_text(f"{namespace_id}.stratus.localhost").count() >= 1
        assert page.get_by_text("Browsed CA").count() == 1
        screenshot(page, tmp_path, "namespace-detail", full_page=True)
        assert serious_violations(page) == []

        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/namespaces", f"/namespaces/{namespace_id}"):
            page.goto(stratus.api_url + path)
            assert_no_sideways_scroll(page, path)
        screenshot(page, tmp_path, "namespace-detail-390", full_page=True)
        assert serious_violations(page) == []

        page.keyboard.press("Tab")  # the first stop is the skip link
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    assert csp_reports == []
