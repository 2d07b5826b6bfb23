"""The console's whole journey in a real browser (Debian's chromium, driven by playwright; never
`playwright install`), as issue 13 item 5 asks, in one test so the browser and the sign-in are
paid once:

sign in through the test OIDC IdP; create a namespace by uploading a CA file and watch its row
turn ACTIVE without a reload (htmx); change its settings and watch the update finish; run a real
temporalio worker through the gateway, find its workflow with the query box and the status
filter and open its history; invite a user; create an API key and copy it (the clipboard holds
exactly the secret shown, and the key works); render the usage charts; download an invoice (the
API's own file); filter the audit log; another account's namespace id answers the same
"not found" page as an unknown id; a `read` user, signed in by a one-time link, sees no
mutating control; at 390 px nothing scrolls sideways. axe-core finds no serious or critical
violation on any page, the CSP blocks nothing, the skip link is the first keyboard stop.
Screenshots (STRATUS_CONSOLE_SCREENSHOTS refreshes docs/console/): sign-in, namespace-new,
namespaces, namespace-detail, namespace-settings, workflows, workflow-detail, users, api-keys,
api-key-created, usage, invoices, invoice, audit, sign-in-link, namespaces-read,
namespace-detail-390."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from billing_support import bill, record_usage
from identity_support import issue_user_key
from oidc_support import OidcStratus
from playwright.sync_api import Page
from support import StratusUp, http, new_tenant, tls_for, wait_until
from temporalio.client import Client
from temporalio.worker import Worker

from auth import KeyPair, generate_ca, generate_leaf

# The console's browser helpers live next to the console's tests; this test needs the OIDC
# fixtures of this directory, so it imports them from there.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "console"))
from console_support import (
    assert_no_sideways_scroll,
    chromium,
    console_link,
    screenshot,
    serious_violations,
    watch_csp,
)
from test_console_billing import MONTH, MONTH_PARAM, at
from workflow_browser_workflows import PricingWorkflow, price_order

pytestmark = pytest.mark.sqlite_only

NOT_FOUND_TEXT = "This page does not exist, or you do not have access to it."
GB = 10**9
T = TypeVar("T")


async def _run_pricing(
    stratus: StratusUp, client_cert: KeyPair, namespace_id: str, workflow_id: str
) -> None:
    """A real worker and client through the gateway's mTLS endpoint: one workflow, completed."""
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, client_cert, namespace_id),
    )
    queue = f"journey-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[PricingWorkflow], activities=[price_order]
    ):
        await client.execute_workflow(
            PricingWorkflow.run,
            {"id": 7, "quantity": 2, "note": "gift wrap"},
            id=workflow_id,
            task_queue=queue,
        )


def _usage_and_invoice(stratus: StratusUp, account_id: str, namespace_id: str) -> None:
    """A month of metered usage (through the meters' store) rated as a draft invoice."""
    other = f"reports.{account_id}"
    asyncio.run(
        record_usage(
            stratus,
            [
                (namespace_id, at(day, 9), kind, quantity)
                for day in range(1, 32)
                for kind, quantity in (
                    ("actions.workflow", 20_000 + 700 * day),
                    ("actions.activity", 60_000 + 1_300 * (day % 9)),
                    ("actions.timer", 9_000 * (day % 4)),
                )
            ]
            + [(other, at(day, 9), "actions.signal", 15_000) for day in range(5, 25)]
            + [(other, at(day), "storage.active", (30 + day) * GB) for day in range(1, 32)],
        )
    )
    asyncio.run(bill(stratus, now=at(20), account_ids=[account_id], month=MONTH))


def _beside_the_browser(run: Callable[..., T], *args: Any) -> T:
    """``run(*args)`` on another thread: playwright's sync API keeps an event loop running on
    this one, so ``asyncio.run`` (the worker, the billing cycle) cannot run here."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(run, *args).result()


def _checked(page: Page, name: str, tmp_path: Path, *, full_page: bool = False) -> None:
    """Screenshot ``name`` and assert axe-core finds nothing serious on the page."""
    screenshot(page, tmp_path, name, full_page=full_page)
    assert serious_violations(page) == [], name


def test_the_whole_console_journey(oidc: OidcStratus, owner_key: str, tmp_path: Path) -> None:
    stratus = oidc.stratus
    api = stratus.api_url
    ca = generate_ca("Journey CA")
    worker_cert = generate_leaf(ca, "journey-worker")
    ca_file = tmp_path / "journey-ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    # Another tenant's namespace, for the cross-tenant URL (its state does not matter).
    other = new_tenant(stratus, "Elsewhere")
    with other.client(stratus) as client:
        foreign_id = client.create_namespace(
            "hidden", other.ca.cert_pem.decode(), retention_days=7
        ).namespace.id
    with http(stratus, owner_key) as client:
        account_id = client.get("/current-identity").json()["account_id"]
    namespace_id = f"journey.{account_id}"
    workflow_id = f"order-{uuid.uuid4().hex[:6]}"

    with chromium() as browser:
        context = browser.new_context(
            viewport={"width": 1280, "height": 800},
            permissions=["clipboard-read", "clipboard-write"],
            accept_downloads=True,
        )
        page = context.new_page()
        csp_reports = watch_csp(page)

        # Sign in through the real OIDC IdP.
        page.goto(api + "/namespaces")
        page.wait_for_url(api + "/sign-in*")
        _checked(page, "sign-in", tmp_path)
        page.keyboard.press("Tab")  # the first stop is the skip link
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.get_by_role("link", name="Sign in with test-idp").click()
        page.fill('input[name="login"]', "alice")
        page.fill('input[name="password"]', "any")
        page.click('button[type="submit"]')
        page.wait_for_selector('input[name="prompt"][value="consent"]', state="attached")
        page.click('button[type="submit"]')
        page.wait_for_url(api + "/namespaces")
        assert page.get_by_text("alice@example.com").count() == 1

        # Create a namespace by uploading the CA file; its row turns ACTIVE by htmx polling.
        page.get_by_role("link", name="Create namespace").click()
        page.wait_for_url("**/namespaces/new")
        page.get_by_label("Name").fill("journey")
        page.get_by_label("Retention (days)").fill("7")
        page.get_by_label("CA certificates file (PEM)").set_input_files(ca_file)
        _checked(page, "namespace-new", tmp_path)
        page.get_by_role("button", name="Create namespace").click()
        page.wait_for_url(f"**/namespaces/{namespace_id}")
        page.goto(api + "/namespaces")
        page.evaluate("window.notReloaded = true")
        row = page.locator("#namespace-rows tr", has_text=namespace_id)
        row.locator('[data-state="ACTIVE"]').wait_for(timeout=120_000)
        assert page.evaluate("window.notReloaded === true")  # htmx swapped the rows
        _checked(page, "namespaces", tmp_path)

        row.get_by_role("link", name=namespace_id).click()
        page.wait_for_url(f"**/namespaces/{namespace_id}")
        assert page.get_by_text(f"{namespace_id}.stratus.localhost").count() >= 1
        assert page.get_by_text("Journey CA").count() == 1
        _checked(page, "namespace-detail", tmp_path)

        # Its settings: the update's operation finishes while the page stays (htmx).
        page.get_by_label("Retention (days)").fill("10")
        # The worker's certificate (common name "journey-worker") passes the new filter.
        page.get_by_label("Filter 1: common name", exact=True).fill("journey-*")
        page.get_by_label("Authentication of SDK clients").select_option("mtls_or_api_key")
        page.get_by_role("heading", name="Settings").scroll_into_view_if_needed()
        _checked(page, "namespace-settings", tmp_path)
        page.get_by_role("button", name="Save settings").click()
        page.wait_for_url(f"{api}/namespaces/{namespace_id}")
        page.evaluate("window.notReloaded = true")
        page.locator('[data-operation-state="FULFILLED"]').wait_for(timeout=120_000)
        page.locator('#namespace-live [data-state="ACTIVE"]').wait_for(timeout=30_000)
        assert page.evaluate("window.notReloaded === true")
        assert page.get_by_label("Retention (days)").input_value() == "10"

        # A real worker runs a workflow; the browser finds it and opens its history.
        _beside_the_browser(
            asyncio.run, _run_pricing(stratus, worker_cert, namespace_id, workflow_id)
        )
        page.get_by_role("link", name="Workflows").click()
        page.wait_for_url(f"**/namespaces/{namespace_id}/workflows")
        page.get_by_label("Visibility query").fill('WorkflowType="PricingWorkflow"')
        page.get_by_label("Status").select_option("Completed")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**/workflows?query=*")
        row_link = page.get_by_role("link", name=workflow_id)

        def listed() -> bool:
            # Visibility is eventually consistent: search again until the run is listed.
            if row_link.count() == 1:
                return True
            page.reload()
            return False

        wait_until(listed, timeout=60, interval=0.5)
        assert page.get_by_label("Status").input_value() == "Completed"
        _checked(page, "workflows", tmp_path)
        workflows_url = page.url
        row_link.click()
        page.wait_for_url(f"**/workflows/{workflow_id}/*")
        history = page.get_by_role("table", name="Events of run")
        history.get_by_text("WorkflowExecutionCompleted").wait_for()
        assert page.locator('[data-status="Completed"]').count() == 1
        assert '"total": 6' in page.locator("#result-1").inner_text()
        _checked(page, "workflow-detail", tmp_path)
        workflow_url = page.url

        # Invite a user and let them read the namespace (their view comes last).
        page.get_by_role("link", name="Users & keys").click()
        page.wait_for_url("**/users")
        page.get_by_label("Email").fill("reader@alice.example")
        page.get_by_label("Account role").select_option("read")
        page.get_by_role("button", name="Invite user").click()
        page.wait_for_url("**/users/*")
        assert page.get_by_role("heading", name="reader@alice.example").count() == 1
        reader_id = page.url.rsplit("/", 1)[1]
        permission = page.get_by_label(f"Permission of reader@alice.example on {namespace_id}")
        permission.select_option("read")
        page.get_by_role("button", name=f"Save permission on {namespace_id}").click()
        page.locator('select[data-permission="read"]').wait_for()
        assert serious_violations(page) == []  # the user's page
        page.get_by_role("link", name="Users", exact=True).click()
        page.wait_for_url("**/users")
        assert page.get_by_role("link", name="reader@alice.example").count() == 1
        _checked(page, "users", tmp_path)

        # An API key, its secret shown once and copied.
        page.get_by_role("link", name="API keys").click()
        page.wait_for_url("**/api-keys")
        _checked(page, "api-keys", tmp_path)
        page.get_by_label("Name", exact=True).fill("laptop")
        page.get_by_role("button", name="Create API key").click()
        page.get_by_role("heading", name="API key created").wait_for()
        secret = page.get_by_label("Secret").input_value()
        page.get_by_role("button", name="Copy").click()
        page.get_by_text("The secret is in your clipboard.").wait_for()
        assert page.evaluate("navigator.clipboard.readText()") == secret
        _checked(page, "api-key-created", tmp_path)

        # Usage charts and an invoice, from metered usage rated by the billing cycle.
        _beside_the_browser(_usage_and_invoice, stratus, account_id, namespace_id)
        page.get_by_role("link", name="Usage", exact=True).click()
        page.wait_for_url("**/usage")
        page.goto(f"{api}/usage?month={MONTH_PARAM}")
        chart = page.locator("svg#actions-per-day")
        chart.wait_for(state="visible")
        assert chart.get_attribute("role") == "img"
        # workflow and activity every day, timers on 24 days, signals on 20: no empty bars.
        assert chart.locator("rect").count() == 31 + 31 + 24 + 20
        box = chart.bounding_box()
        assert box is not None
        assert box["width"] > 600
        assert box["height"] > 150
        assert page.locator("svg#storage-per-day rect").count() == 31
        assert page.locator("svg#actions-per-namespace rect").count() == 2
        page.get_by_role("heading", name="Per day").evaluate("h => h.scrollIntoView()")
        _checked(page, "usage", tmp_path)  # the chart, in the 1280x800 screenshot

        page.get_by_role("link", name="Invoices", exact=True).click()
        page.wait_for_url("**/invoices")
        _checked(page, "invoices", tmp_path)
        page.get_by_role("link", name=MONTH.strftime("%B %Y")).click()
        page.wait_for_url("**/invoices/*")
        invoice_id = page.url.rsplit("/", 1)[1]
        _checked(page, "invoice", tmp_path)
        with page.expect_download() as downloading:
            page.get_by_role("link", name="Download CSV").click()
        download = downloading.value
        assert download.suggested_filename.endswith(f"{invoice_id}.csv")
        with http(stratus, owner_key) as client:
            api_csv = client.get(
                f"/invoices/{invoice_id}/download", params={"format": "csv"}
            ).content
        assert Path(download.path()).read_bytes() == api_csv

        # The audit log, filtered from its form.
        page.get_by_role("link", name="Audit log", exact=True).click()
        page.wait_for_url("**/audit")
        _checked(page, "audit", tmp_path)
        page.get_by_label("Action").fill("namespace.create")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_url("**/audit?*action=namespace.create*")
        targets = page.locator("#audit-events tbody tr td:nth-child(4)").all_inner_texts()
        actions = page.locator("#audit-events tbody tr td:nth-child(3)").all_inner_texts()
        assert set(actions) == {"namespace.create"}
        assert namespace_id in targets

        # Settings: the account's SAML service provider, its metadata to download.
        page.get_by_role("link", name="Settings", exact=True).click()
        page.wait_for_url("**/settings")
        _checked(page, "settings", tmp_path)
        assert page.get_by_role("link", name="Download SP metadata (XML)").count() == 1

        # Another account's namespace id: the same "not found" page as an unknown id.
        foreign = page.goto(f"{api}/namespaces/{foreign_id}")
        assert foreign is not None
        assert foreign.status == 404
        foreign_main = page.inner_text("main")
        unknown = page.goto(f"{api}/namespaces/nothing.{account_id}")
        assert unknown is not None
        assert unknown.status == 404
        assert page.inner_text("main") == foreign_main
        assert NOT_FOUND_TEXT in foreign_main
        assert foreign_id not in page.content()
        assert serious_violations(page) == []

        # A phone's width: nothing scrolls sideways.
        page.set_viewport_size({"width": 390, "height": 844})
        for path in (
            "/namespaces",
            f"/namespaces/{namespace_id}",
            workflows_url.removeprefix(api),
            workflow_url.removeprefix(api),
            "/users",
            f"/users/{reader_id}",
            "/api-keys",
            f"/usage?month={MONTH_PARAM}",
            "/invoices",
            f"/invoices/{invoice_id}",
            "/audit",
            "/settings",
        ):
            page.goto(api + path)
            assert_no_sideways_scroll(page, path)
        assert serious_violations(page) == []  # /settings, seen only here
        page.goto(f"{api}/namespaces/{namespace_id}")
        screenshot(page, tmp_path, "namespace-detail-390")
        assert secret not in page.content()
        context.close()

        # A `read` user: signed in by a one-time link, sees no mutating control.
        reader_key = _beside_the_browser(issue_user_key, stratus, reader_id)
        reader = browser.new_page(viewport={"width": 1280, "height": 800})
        watch_csp(reader, csp_reports)
        reader.goto(api + console_link(stratus, reader_key))
        _checked(reader, "sign-in-link", tmp_path)
        reader.get_by_role("button", name="Sign in").click()
        reader.wait_for_url("**/namespaces")
        assert reader.get_by_text("reader@alice.example").count() == 1
        assert reader.get_by_role("link", name=namespace_id).count() == 1
        assert reader.get_by_role("link", name="Create namespace").count() == 0
        _checked(reader, "namespaces-read", tmp_path)
        reader.goto(f"{api}/namespaces/{namespace_id}")
        for control in ("Save settings", "Delete namespace", "Add CA", "Remove"):
            assert reader.get_by_role("button", name=control).count() == 0, control
        assert reader.locator("main form").count() == 0
        assert serious_violations(reader) == []
    with http(stratus, secret) as client:
        assert client.get("/current-identity").json()["display"] == "user:alice@example.com"
    assert csp_reports == []
