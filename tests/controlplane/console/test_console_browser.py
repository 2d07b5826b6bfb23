"""The console in a real browser (Debian's chromium, driven by playwright; never
`playwright install`): a one-time link signs the tenant's owner in, a namespace is created by
uploading a CA file, its row turns ACTIVE without a reload (htmx), its detail page opens, a
390-px phone width does not scroll sideways, axe-core finds no serious or critical violation,
and the CSP blocks nothing. Screenshots go to the test's tmp dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from console_support import console_link
from playwright.sync_api import Page, sync_playwright
from support import StratusUp, new_tenant

pytestmark = pytest.mark.sqlite_only

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = (
    Path(__file__).resolve().parents[3]
    / "controlplane/console/static/node_modules/axe-core/axe.min.js"
)


def _serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page (evaluated through the
    DevTools protocol, which the page's CSP does not govern)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;0")
    violations: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document)).violations
            .filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.html)}))"""
    )
    return violations


def test_console_journey_in_chromium(stratus: StratusUp, tmp_path: Path) -> None:
    assert AXE.is_file(), "run `make test-deps` (npm ci in controlplane/console/static)"
    tenant = new_tenant(stratus, "Browsed")
    ca_file = tmp_path / "tenant-ca.pem"
    ca_file.write_bytes(tenant.ca.cert_pem)
    namespace_id = f"clicked.{tenant.account_id}"
    csp_reports: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on(
                "console",
                lambda m: csp_reports.append(m.text) if "Content Security" in m.text else None,
            )
            page.goto(stratus.api_url + console_link(stratus, tenant.api_key))
            page.screenshot(path=tmp_path / "sign-in-link.png")
            assert _serious_violations(page) == []
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url("**/namespaces")
            page.get_by_role("link", name="Create namespace").click()
            page.wait_for_url("**/namespaces/new")
            assert _serious_violations(page) == []
            page.get_by_label("Name").fill("clicked")
            page.get_by_label("Retention (days)").fill("7")
            page.get_by_label("CA certificates file (PEM)").set_input_files(ca_file)
            page.screenshot(path=tmp_path / "namespace-new.png")
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
            page.screenshot(path=tmp_path / "namespaces.png")
            assert _serious_violations(page) == []

            row.get_by_role("link", name=namespace_id).click()
            page.wait_for_url(f"**/namespaces/{namespace_id}")
            assert page.get_by_text(f"{namespace_id}.stratus.localhost").count() >= 1
            assert page.get_by_text("Browsed CA").count() == 1
            page.screenshot(path=tmp_path / "namespace-detail.png", full_page=True)
            assert _serious_violations(page) == []

            page.set_viewport_size({"width": 390, "height": 844})
            for path in ("/namespaces", f"/namespaces/{namespace_id}"):
                page.goto(stratus.api_url + path)
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, f"{path} scrolls sideways at 390 px by {overflow} px"
            page.screenshot(path=tmp_path / "namespace-detail-390.png", full_page=True)
            assert _serious_violations(page) == []

            page.keyboard.press("Tab")  # the first stop is the skip link
            assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        finally:
            browser.close()
    assert csp_reports == []
