"""Console polish in a real browser (Debian's chromium via playwright): a signed-out visit to a
namespace's page comes back to it after the one-time link; when the status section reports the
namespace changed under the page, a form holding typed input is kept (a notice offers the
reload) and a clean page reloads its body; nothing scrolls sideways at 390 px; axe-core finds
no serious or critical violation. Screenshot "namespace-stale-notice"."""

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
from playwright.sync_api import Page
from support import StratusUp, create_active_namespace, new_tenant

pytestmark = pytest.mark.sqlite_only

NOTICE = "This namespace changed while you were editing"


def _status_reports_a_change(page: Page, namespace_id: str) -> None:
    """What the status poll answers once the namespace changed under the page (its shown
    state and resource version are no longer the namespace's), swapped in as htmx does."""
    page.evaluate(
        """(url) => htmx.ajax("GET", url, {target: "#namespace-status", swap: "outerHTML"})""",
        f"/namespaces/{namespace_id}/status?shown=UPDATING:an-older-version",
    )


def test_return_to_and_typing_kept_while_the_namespace_changes(
    stratus: StratusUp, tmp_path: Path
) -> None:
    tenant = new_tenant(stratus, "Kept")
    namespace_id = create_active_namespace(stratus, tenant, "typing")
    detail = f"{stratus.api_url}/namespaces/{namespace_id}"
    with chromium() as browser:
        page, csp_reports = console_page(browser, height=900)
        page.goto(detail)
        page.wait_for_url("**/sign-in?return_to=*")
        sign_in_by_link(page, stratus, tenant.api_key, detail)

        retention = page.get_by_label("Retention (days)")
        retention.fill("12")
        _status_reports_a_change(page, namespace_id)
        notice = page.get_by_text(NOTICE)
        notice.wait_for(state="visible")
        assert retention.input_value() == "12"
        notice.scroll_into_view_if_needed()
        screenshot(page, tmp_path, "namespace-stale-notice")
        assert serious_violations(page) == []

        page.reload()
        page.evaluate("document.getElementById('retention_days').dataset.before = 'reload'")
        _status_reports_a_change(page, namespace_id)
        # Nothing typed: the body is reloaded in place (a fresh form, no notice).
        page.locator("#retention_days:not([data-before])").wait_for()
        assert page.get_by_text(NOTICE).is_hidden()

        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(detail)
        assert_no_sideways_scroll(page, detail)
        assert serious_violations(page) == []
    assert csp_reports == []
