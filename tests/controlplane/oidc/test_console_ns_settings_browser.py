"""OIDC sign-in into the console in a real browser (Debian's chromium, driven by playwright):
the sign-in page's provider button goes through the test IdP and lands on the console signed
in; the namespace's settings form changes retention and adds a certificate filter, and the
detail page shows the update finishing without a reload (htmx); the settings page too. Every
page: axe-core finds no serious or critical violation, no sideways scroll at 390 px, the CSP
blocks nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from oidc_support import OidcStratus

from auth import generate_ca
from controlplane.client import StratusClient

# The console's browser helpers live next to the console's tests; this test needs the OIDC
# fixtures of this directory, so it imports them from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "console"))
from console_support import (
    assert_no_sideways_scroll,
    chromium,
    screenshot,
    serious_violations,
)

pytestmark = pytest.mark.sqlite_only


def test_oidc_sign_in_into_the_console_and_edit_settings(
    oidc: OidcStratus, owner_key: str, tmp_path: Path
) -> None:
    api = oidc.stratus.api_url
    with StratusClient(api, owner_key) as client:
        created = client.create_namespace(
            "tuned", generate_ca("Alice CA").cert_pem.decode(), retention_days=7
        )
        namespace_id = created.namespace.id
        operation = client.wait_for_operation(created.async_operation.id, timeout=120)
        assert operation.state == "FULFILLED", operation.failure_reason
    csp_reports: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console",
            lambda m: csp_reports.append(m.text) if "Content Security" in m.text else None,
        )
        page.goto(api + "/sign-in")
        screenshot(page, tmp_path, "sign-in")
        assert serious_violations(page) == []
        page.get_by_role("link", name="Sign in with test-idp").click()
        page.fill('input[name="login"]', "alice")
        page.fill('input[name="password"]', "any")
        page.click('button[type="submit"]')
        page.wait_for_selector('input[name="prompt"][value="consent"]', state="attached")
        page.click('button[type="submit"]')
        page.wait_for_url(api + "/namespaces")
        assert page.get_by_text("alice@example.com").count() == 1

        page.goto(f"{api}/namespaces/{namespace_id}")
        page.get_by_label("Retention (days)").fill("10")
        page.get_by_label("Filter 1: common name", exact=True).fill("worker-*")
        page.get_by_label("Filter 1: organization", exact=True).fill("Alice Co")
        page.get_by_label("Authentication of SDK clients").select_option("mtls_or_api_key")
        page.get_by_role("heading", name="Settings").scroll_into_view_if_needed()
        screenshot(page, tmp_path, "namespace-settings")
        assert serious_violations(page) == []
        page.get_by_role("button", name="Save settings").click()
        page.wait_for_url(f"{api}/namespaces/{namespace_id}")
        page.evaluate("window.notReloaded = true")
        # The update's operation finishes while the page stays: htmx swaps the body in.
        page.locator('[data-operation-state="FULFILLED"]').wait_for(timeout=120_000)
        page.locator('#namespace-live [data-state="ACTIVE"]').wait_for(timeout=30_000)
        assert page.evaluate("window.notReloaded === true")
        assert page.get_by_label("Retention (days)").input_value() == "10"
        assert page.get_by_label("Filter 1: common name", exact=True).input_value() == "worker-*"
        assert serious_violations(page) == []

        page.get_by_role("link", name="Settings").click()
        page.wait_for_url(api + "/settings")
        assert page.get_by_role("link", name="Download SP metadata (XML)").count() == 1
        assert serious_violations(page) == []

        page.set_viewport_size({"width": 390, "height": 844})
        for path in ("/sign-in", f"/namespaces/{namespace_id}", "/settings"):
            page.goto(api + path)
            assert_no_sideways_scroll(page, path)
            assert serious_violations(page) == []
    assert csp_reports == []
