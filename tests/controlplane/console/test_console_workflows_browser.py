"""The workflow browser in a real browser (Debian's chromium via playwright): from the
namespace's page to its workflows, a search by the query box and the status filter, a run's
history; axe-core finds no serious or critical violation, nothing scrolls sideways at 390 px,
the CSP blocks nothing. Screenshots "workflows" and "workflow-detail"."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from console_support import (
    assert_no_sideways_scroll,
    chromium,
    console_link,
    screenshot,
    serious_violations,
    signed_in,
)
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    new_tenant,
    tls_for,
    wait_until,
)
from temporalio.client import Client
from temporalio.worker import Worker
from workflow_browser_workflows import PricingWorkflow, price_order

pytestmark = pytest.mark.sqlite_only


async def _run_pricing(
    stratus: StratusUp, tenant: Tenant, namespace_id: str, workflow_id: str
) -> None:
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, tenant.client_cert, namespace_id),
    )
    queue = f"clicked-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[PricingWorkflow], activities=[price_order]
    ):
        await client.execute_workflow(
            PricingWorkflow.run,
            {"id": 7, "quantity": 2, "note": "gift wrap"},
            id=workflow_id,
            task_queue=queue,
        )


def test_find_a_workflow_and_open_its_history_in_chromium(
    stratus: StratusUp, tmp_path: Path
) -> None:
    tenant = new_tenant(stratus, "Clicks")
    namespace_id = create_active_namespace(stratus, tenant, "shop")
    workflow_id = f"order-{uuid.uuid4().hex[:6]}"
    asyncio.run(_run_pricing(stratus, tenant, namespace_id, workflow_id))
    # Visibility is eventually consistent: the run is listed before the browser looks.
    client = signed_in(stratus, tenant.api_key)
    try:
        wait_until(
            lambda: workflow_id in client.get(f"/namespaces/{namespace_id}/workflows").text,
            timeout=60,
        )
    finally:
        client.close()
    csp_reports: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on(
            "console",
            lambda m: csp_reports.append(m.text) if "Content Security" in m.text else None,
        )
        page.goto(stratus.api_url + console_link(stratus, tenant.api_key))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/namespaces")
        page.goto(f"{stratus.api_url}/namespaces/{namespace_id}")
        page.get_by_role("link", name="Workflows").click()
        page.wait_for_url(f"**/namespaces/{namespace_id}/workflows")

        page.get_by_label("Visibility query").fill('WorkflowType="PricingWorkflow"')
        page.get_by_label("Status").select_option("Completed")
        page.get_by_role("button", name="Search").click()
        page.wait_for_url("**/workflows?query=*")
        row_link = page.get_by_role("link", name=workflow_id)
        assert row_link.count() == 1
        assert page.get_by_label("Status").input_value() == "Completed"
        screenshot(page, tmp_path, "workflows")
        assert serious_violations(page) == []
        workflows_url = page.url

        row_link.click()
        page.wait_for_url(f"**/workflows/{workflow_id}/*")
        history = page.get_by_role("table", name="Events of run")
        history.get_by_text("WorkflowExecutionCompleted").wait_for()
        assert page.locator('[data-status="Completed"]').count() == 1
        assert '"total": 6' in page.locator("#result-1").inner_text()
        screenshot(page, tmp_path, "workflow-detail", full_page=True)
        assert serious_violations(page) == []
        detail_url = page.url

        page.set_viewport_size({"width": 390, "height": 844})
        for url in (workflows_url, detail_url):
            page.goto(url)
            assert_no_sideways_scroll(page, url)
            assert serious_violations(page) == []
    assert csp_reports == []
