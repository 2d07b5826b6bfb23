"""The users, service accounts and API keys pages in a real browser (Debian's chromium, driven
by playwright): the owner invites a user and creates a service account through the forms,
creates an API key and copies its secret with the Copy button (the clipboard then holds exactly
the secret the page shows), axe-core finds no serious or critical violation on any of these
pages, none scrolls sideways at 390 px, and the CSP blocks nothing."""

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
from support import StratusUp, http, new_tenant

pytestmark = pytest.mark.sqlite_only


def test_invite_a_user_and_copy_a_new_api_key(stratus: StratusUp, tmp_path: Path) -> None:
    tenant = new_tenant(stratus, "Keyed")
    csp_reports: list[str] = []
    with chromium() as browser:
        context = browser.new_context(
            viewport={"width": 1280, "height": 900},
            permissions=["clipboard-read", "clipboard-write"],
        )
        page = context.new_page()
        page.on(
            "console",
            lambda m: csp_reports.append(m.text) if "Content Security" in m.text else None,
        )
        page.goto(stratus.api_url + console_link(stratus, tenant.api_key))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/namespaces")

        page.get_by_role("link", name="Users & keys").click()
        page.wait_for_url("**/users")
        page.get_by_label("Email").fill("dev@keyed.example")
        page.get_by_label("Account role").select_option("developer")
        page.get_by_role("button", name="Invite user").click()
        page.wait_for_url("**/users/*")
        assert page.get_by_role("heading", name="dev@keyed.example").count() == 1
        user_path = page.url.removeprefix(stratus.api_url)
        assert serious_violations(page) == []
        page.get_by_role("link", name="Remove dev@keyed.example").click()
        page.wait_for_url("**/remove")
        assert serious_violations(page) == []  # the confirmation page
        page.get_by_role("link", name="Users", exact=True).click()
        page.wait_for_url("**/users")
        assert page.get_by_role("link", name="dev@keyed.example").count() == 1
        screenshot(page, tmp_path, "users")
        assert serious_violations(page) == []

        page.get_by_role("link", name="Service accounts").click()
        page.wait_for_url("**/service-accounts")
        page.get_by_label("Name", exact=True).fill("deployer")
        page.get_by_label("Account role (whole account)").select_option("developer")
        page.get_by_role("button", name="Create service account").click()
        page.wait_for_url("**/service-accounts")
        assert page.get_by_role("cell", name="deployer", exact=True).count() == 1
        screenshot(page, tmp_path, "service-accounts")
        assert serious_violations(page) == []

        page.get_by_role("link", name="API keys").click()
        page.wait_for_url("**/api-keys")
        screenshot(page, tmp_path, "api-keys")
        assert serious_violations(page) == []
        page.get_by_label("Name", exact=True).fill("laptop")
        page.get_by_role("button", name="Create API key").click()
        page.get_by_role("heading", name="API key created").wait_for()
        secret = page.get_by_label("Secret").input_value()
        page.get_by_role("button", name="Copy").click()
        page.get_by_text("The secret is in your clipboard.").wait_for()
        assert page.evaluate("navigator.clipboard.readText()") == secret
        screenshot(page, tmp_path, "api-key-created")
        assert serious_violations(page) == []

        page.set_viewport_size({"width": 390, "height": 844})
        assert_no_sideways_scroll(page, "api-key-created")
        for path in ("/users", user_path, "/service-accounts", "/api-keys"):
            page.goto(stratus.api_url + path)
            assert_no_sideways_scroll(page, path)
        assert secret not in page.content()
        context.close()
    with http(stratus, secret) as api:
        assert api.get("/current-identity").json()["display"] == "user:owner@keyed.example"
    assert csp_reports == []
