"""The people pages the whole journey (tests/controlplane/oidc/test_console_journey_browser.py:
invite, users, API keys, the secret copied) does not visit, in a real browser (Debian's
chromium, driven by playwright): a user's removal confirmation, and a service account created
through its form; axe-core finds no serious or critical violation on either page, neither
scrolls sideways at 390 px, and the CSP blocks nothing. Screenshot "service-accounts"."""

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
from identity_support import invite
from support import StratusUp, new_tenant

pytestmark = pytest.mark.sqlite_only


def test_remove_confirmation_and_a_new_service_account(stratus: StratusUp, tmp_path: Path) -> None:
    tenant = new_tenant(stratus, "Keyed")
    user = invite(stratus, tenant.api_key, "dev@keyed.example", "developer")
    with chromium() as browser:
        page, csp_reports = console_page(browser)
        sign_in_by_link(page, stratus, tenant.api_key, "**/namespaces")

        page.goto(f"{stratus.api_url}/users/{user['id']}")
        page.get_by_role("link", name="Remove dev@keyed.example").click()
        page.wait_for_url("**/remove")
        remove_path = page.url.removeprefix(stratus.api_url)
        assert serious_violations(page) == []  # the confirmation page

        page.get_by_role("link", name="Users & keys").click()
        page.get_by_role("link", name="Service accounts").click()
        page.wait_for_url("**/service-accounts")
        page.get_by_label("Name", exact=True).fill("deployer")
        page.get_by_label("Account role (whole account)").select_option("developer")
        page.get_by_role("button", name="Create service account").click()
        page.wait_for_url("**/service-accounts")
        assert page.get_by_role("cell", name="deployer", exact=True).count() == 1
        screenshot(page, tmp_path, "service-accounts")
        assert serious_violations(page) == []

        page.set_viewport_size({"width": 390, "height": 844})
        for path in (remove_path, "/service-accounts"):
            page.goto(stratus.api_url + path)
            assert_no_sideways_scroll(page, path)
    assert csp_reports == []
