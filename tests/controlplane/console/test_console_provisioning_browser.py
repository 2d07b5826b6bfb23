"""Settings → Provisioning in a real browser (Debian's chromium, driven by playwright): the owner
creates the SCIM token (shown once), maps an IdP group to a group and turns group claims off
behind the confirmation; axe-core finds no serious or critical violation on the page or the
token's page, the page does not scroll sideways at 390 px, and the CSP blocks nothing.
Screenshot "provisioning"."""

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
from support import StratusUp, http, new_tenant

pytestmark = pytest.mark.sqlite_only


def test_token_and_group_claims_in_the_browser(stratus: StratusUp, tmp_path: Path) -> None:
    tenant = new_tenant(stratus, "Provisioner")
    with http(stratus, tenant.api_key) as api:
        assert api.post("/groups", json={"name": "platform"}).status_code == 201
    with chromium() as browser:
        page, csp_reports = console_page(browser)
        sign_in_by_link(page, stratus, tenant.api_key, "**/namespaces")
        page.get_by_role("link", name="Settings").click()
        page.get_by_role("link", name="SCIM and group claims").click()
        page.wait_for_url("**/settings/provisioning")
        page.get_by_role("button", name="Create token").click()
        page.get_by_role("heading", name="SCIM token created").wait_for()
        token = page.get_by_label("Token").input_value()
        assert token.startswith("stratus_scim_")
        assert serious_violations(page) == []
        page.get_by_role("link", name="Done").click()
        page.wait_for_url("**/settings/provisioning")
        assert token not in page.content()

        page.get_by_label("Identity provider group").fill("eng-oncall")
        page.get_by_label("Stratus group").select_option(label="platform")
        page.get_by_role("button", name="Add mapping").click()
        page.get_by_role("button", name="Remove the mapping of eng-oncall to platform").wait_for()
        with http(stratus, tenant.api_key) as api:
            mappings = api.get("/group-claims").json()["mappings"]
        assert [(m["idp_group"], m["group_name"]) for m in mappings] == [("eng-oncall", "platform")]
        screenshot(page, tmp_path, "provisioning", full_page=True)
        assert serious_violations(page) == []

        page.get_by_role("link", name="Turn off group claims").click()
        page.get_by_role("button", name="Turn off group claims").click()
        page.get_by_text("Group claims are off").wait_for()
        with http(stratus, tenant.api_key) as api:
            assert api.get("/group-claims").status_code == 404

        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(stratus.api_url + "/settings/provisioning")
        assert_no_sideways_scroll(page, "/settings/provisioning")
    assert csp_reports == []
