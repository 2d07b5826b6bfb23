"""The console's Groups pages: in a real browser (Debian's chromium, driven by playwright) the
owner creates a group with a role, adds a member, removes it and deletes the group, and the
API then shows what the console did; axe-core finds no serious or critical violation on the
list or the detail page, neither scrolls sideways at 390 px, and the CSP blocks nothing. Over
HTTP: every groups POST needs the CSRF token, another account's group answers the same 404
page as an unknown id, and an admin is offered no role it does not hold. Screenshot
"groups"."""

from __future__ import annotations

from pathlib import Path

import pytest
from console_support import (
    assert_no_sideways_scroll,
    chromium,
    console_page,
    html_page,
    screenshot,
    serious_violations,
    sign_in_by_link,
    signed_in,
)
from identity_support import invite, user_with_key
from support import StratusUp, http, new_tenant

pytestmark = pytest.mark.sqlite_only

UNKNOWN_ID = "00000000-0000-0000-0000-000000000000"


def test_create_staff_and_delete_a_group(stratus: StratusUp, tmp_path: Path) -> None:
    tenant = new_tenant(stratus, "Teamed")
    invite(stratus, tenant.api_key, "dev@teamed.example", "read")
    with chromium() as browser:
        page, csp_reports = console_page(browser)
        sign_in_by_link(page, stratus, tenant.api_key, "**/namespaces")
        page.get_by_role("link", name="Users & keys").click()
        page.get_by_role("link", name="Groups").click()
        page.wait_for_url("**/groups")
        page.get_by_label("Name", exact=True).fill("platform")
        page.get_by_label("Account role of its members").select_option("developer")
        page.get_by_role("button", name="Create group").click()
        page.wait_for_url("**/groups/*")
        detail_path = page.url.removeprefix(stratus.api_url)
        page.get_by_label("Add a user").select_option(label="dev@teamed.example")
        page.get_by_role("button", name="Add member").click()
        page.get_by_role("link", name="dev@teamed.example").wait_for()
        with http(stratus, tenant.api_key) as api:
            (group,) = api.get("/groups").json()["groups"]
        assert (group["name"], group["account_role"], group["member_count"]) == (
            "platform",
            "developer",
            1,
        )
        screenshot(page, tmp_path, "groups")
        assert serious_violations(page) == []

        page.get_by_role("button", name="Remove dev@teamed.example from platform").click()
        page.get_by_text("No members yet.").wait_for()
        page.get_by_role("link", name="Delete platform").click()
        page.get_by_role("button", name="Delete group").click()
        page.wait_for_url("**/groups")
        page.get_by_text("No groups yet.").wait_for()
        assert serious_violations(page) == []

        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(stratus.api_url + "/groups")
        assert_no_sideways_scroll(page, "/groups")
    assert csp_reports == []
    with http(stratus, tenant.api_key) as api:
        assert api.get(detail_path).status_code == 404


def test_groups_pages_refuse_what_the_api_refuses(stratus: StratusUp) -> None:
    tenant, other = new_tenant(stratus, "Teamguard"), new_tenant(stratus, "Teamother")
    with http(stratus, other.api_key) as api:
        foreign_id = api.post("/groups", json={"name": "theirs"}).json()["id"]
    with http(stratus, tenant.api_key) as api:
        own_id = api.post("/groups", json={"name": "ours"}).json()["id"]
    _, admin_key = user_with_key(stratus, tenant.api_key, "admin@teamguard.example", "admin")
    owner, admin = signed_in(stratus, tenant.api_key), signed_in(stratus, admin_key)
    try:
        foreign = owner.get(f"/groups/{foreign_id}")
        unknown = owner.get(f"/groups/{UNKNOWN_ID}")
        assert html_page(foreign, 404) == html_page(unknown, 404)
        for path in ("/groups", f"/groups/{own_id}", f"/groups/{own_id}/members",
                     f"/groups/{own_id}/access", f"/groups/{own_id}/delete"):  # fmt: skip
            for data in ({"name": "csrf"}, {"name": "csrf", "csrf_token": "wrong"}):
                refused = owner.post(path, data=data)
                assert "Missing or wrong CSRF token" in html_page(refused, 403), path
        # An admin is offered the roles it holds entirely: no finance_admin, never owner.
        offered = html_page(admin.get("/groups"), 200)
        assert 'value="admin"' in offered
        assert 'value="finance_admin"' not in offered
        assert 'value="owner"' not in offered
    finally:
        owner.close()
        admin.close()
