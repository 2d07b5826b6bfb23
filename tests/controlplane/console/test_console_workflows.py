"""The workflow browser over HTTP against a real Stratus, with workflows run by a real temporalio
worker through the gateway: the list, its visibility query, status filter and paging; sealed
page tokens that refuse forgery and other namespaces; a run's detail (input and result as JSON,
a binary payload by its size, pending activities, paged history, nothing executed); the same
404 for another tenant's namespaces and workflows; a `read` user may browse, a user without
permission on the namespace may not; a namespace not ACTIVE says so."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape

import grpc.aio
import httpx
import pytest
from console_support import signed_in
from identity_support import user_with_key
from sqlalchemy import select
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    free_port,
    new_tenant,
    tls_for,
    wait_until,
)
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.worker import Worker
from workflow_browser_workflows import ChargeWorkflow, PricingWorkflow, charge_card, price_order

from auth import SecretBox
from controlplane.kit.db import create_engine, create_sessionmaker, unit_of_work
from controlplane.models import User
from controlplane.sign_in.service import user_principal
from controlplane.workflows.service import (
    READ_RPCS,
    CellChannels,
    WorkflowsUnavailable,
    list_workflows,
    shown,
)
from dataplane.cells import CellTls
from dataplane.gateway._policy import WORKFLOW_SERVICE, Handling, Permission, policy_of

NOT_FOUND_TEXT = "This page does not exist, or you do not have access to it."
HOSTILE_NOTE = "<script>alert(1)</script>"
CARD = b"\x00\x01card-bytes\xff"
PRICING_IDS = ("order-1", "order-2", "orders/2026/3")
NEXT_LINK = re.compile(r'<a href="([^"]+)" rel="next">')
RUN_LINK = re.compile(r'<a href="(/namespaces/[^"?]+/workflows/[^"?]+)">')


@dataclass
class Browsed:
    tenant: Tenant
    namespace_id: str
    owner: httpx.Client
    reader: httpx.Client
    developer: httpx.Client
    charge_id: str
    other: Tenant
    other_owner: httpx.Client
    other_namespace_id: str
    other_run: str
    activating_page: httpx.Response


async def _run_workflows(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> str:
    """Three completed PricingWorkflows and one ChargeWorkflow left Running once its activity
    failed at least twice; returns the charge workflow's id."""
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, tenant.client_cert, namespace_id),
    )
    queue = f"browse-{uuid.uuid4().hex[:8]}"
    charge_id = f"charge-{queue}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[PricingWorkflow, ChargeWorkflow],
        activities=[price_order, charge_card],
    ):
        for number, workflow_id in enumerate(PRICING_IDS, start=1):
            order = {"id": number, "quantity": number + 1, "note": HOSTILE_NOTE}
            await client.execute_workflow(
                PricingWorkflow.run, order, id=workflow_id, task_queue=queue
            )
        handle = await client.start_workflow(
            ChargeWorkflow.run, CARD, id=charge_id, task_queue=queue
        )
        while True:
            pending = (await handle.describe()).raw_description.pending_activities
            if pending and pending[0].attempt >= 2:
                break
            await asyncio.sleep(0.1)
    return charge_id


async def _run_one(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> str:
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, tenant.client_cert, namespace_id),
    )
    queue = f"foreign-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[PricingWorkflow], activities=[price_order]
    ):
        handle = await client.start_workflow(
            PricingWorkflow.run,
            {"id": 9, "quantity": 1, "note": "secret"},
            id="order-1",
            task_queue=queue,
        )
        await handle.result()
    assert handle.result_run_id is not None
    return handle.result_run_id


def _ids(page: str) -> list[str]:
    return [
        unescape(m)
        for m in re.findall(r'<a href="/namespaces/[^"]+/workflows/[^"]+">([^<]+)</a>', page)
    ]


@pytest.fixture(scope="module")
def browsed(stratus: StratusUp) -> Iterator[Browsed]:
    other = new_tenant(stratus, "Strangers")
    with other.client(stratus) as client:
        # The account's first namespace waits for its cell to start: ACTIVATING for seconds.
        created = client.create_namespace("ledger", other.ca.cert_pem.decode(), retention_days=7)
    other_namespace_id = created.namespace.id
    other_owner = signed_in(stratus, other.api_key)
    activating_page = other_owner.get(f"/namespaces/{other_namespace_id}/workflows")
    with other.client(stratus) as client:
        state_after = client.get_namespace(other_namespace_id).state
        assert state_after == "ACTIVATING", "the namespace turned ACTIVE too fast to test"
        operation = client.wait_for_operation(created.async_operation.id, timeout=120)
        assert operation.state == "FULFILLED", operation.failure_reason

    tenant = new_tenant(stratus, "Flows")
    namespace_id = create_active_namespace(stratus, tenant, "orders")
    charge_id = asyncio.run(_run_workflows(stratus, tenant, namespace_id))
    other_run = asyncio.run(_run_one(stratus, other, other_namespace_id))
    reader, reader_key = user_with_key(stratus, tenant.api_key, "reader@flows.example", "read")
    _, developer_key = user_with_key(stratus, tenant.api_key, "dev@flows.example", "developer")
    with tenant.client(stratus) as client:
        client.set_namespace_access(namespace_id, reader["id"], "read")
    owner = signed_in(stratus, tenant.api_key)
    clients = [owner, signed_in(stratus, reader_key), signed_in(stratus, developer_key)]
    # Visibility is eventually consistent: wait until the list shows every run.
    wait_until(
        lambda: len(_ids(owner.get(f"/namespaces/{namespace_id}/workflows").text)) == 4,
        timeout=60,
    )
    try:
        yield Browsed(
            tenant,
            namespace_id,
            clients[0],
            clients[1],
            clients[2],
            charge_id,
            other,
            other_owner,
            other_namespace_id,
            other_run,
            activating_page,
        )
    finally:
        for client_ in [*clients, other_owner]:
            client_.close()


def _list(client: httpx.Client, namespace_id: str, **params: str | int) -> httpx.Response:
    return client.get(f"/namespaces/{namespace_id}/workflows", params=params)


def test_the_console_reads_only_what_the_gateway_calls_read() -> None:
    for method in READ_RPCS:
        policy = policy_of(WORKFLOW_SERVICE, method)
        assert policy.handling is Handling.NAMESPACE
        assert policy.permission is Permission.READ


def _payload(encoding: bytes, data: bytes) -> Payload:
    return Payload(metadata={"encoding": encoding}, data=data)


def test_payloads_show_as_json_only_when_their_encoding_says_so() -> None:
    assert (
        shown(_payload(b"json/plain", b'{"a": [1, 2]}')).json
        == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    )
    assert shown(_payload(b"binary/null", b"")).json == "null"
    for encoding, data in (
        (b"binary/plain", b'{"a": 1}'),
        (b"binary/protobuf", b"\x08\x01"),
        (b"json/plain", b"{not json"),
        (b"", b"anything"),
    ):
        payload = shown(_payload(encoding, data))
        assert payload.json is None
        assert payload.summary == f"binary, {len(data)} bytes"
    huge = shown(_payload(b"json/plain", b'"' + b"x" * (2 * 1024 * 1024) + b'"'))
    assert huge.json is None
    assert huge.summary == f"JSON, {2 * 1024 * 1024 + 2} bytes (too large to show here)"


def test_the_list_shows_the_workflows_and_the_query_and_status_narrow_it(
    browsed: Browsed,
) -> None:
    everything = _list(browsed.owner, browsed.namespace_id)
    assert everything.status_code == 200
    assert sorted(_ids(everything.text)) == sorted([*PRICING_IDS, browsed.charge_id])
    assert 'data-status="Running"' in everything.text
    # The namespace's detail page links here.
    detail = browsed.owner.get(f"/namespaces/{browsed.namespace_id}").text
    assert f'href="/namespaces/{browsed.namespace_id}/workflows">Workflows</a>' in detail

    by_type = _list(browsed.owner, browsed.namespace_id, query='WorkflowType="PricingWorkflow"')
    assert sorted(_ids(by_type.text)) == sorted(PRICING_IDS)
    running = _list(browsed.owner, browsed.namespace_id, status="Running")
    assert _ids(running.text) == [browsed.charge_id]
    both = _list(
        browsed.owner, browsed.namespace_id, query='WorkflowId="order-2"', status="Completed"
    )
    assert _ids(both.text) == ["order-2"]
    none = _list(browsed.owner, browsed.namespace_id, query='WorkflowId="order-2"', status="Failed")
    assert _ids(none.text) == []
    assert "No workflow matches." in none.text


def test_a_bad_query_or_status_is_shown_next_to_its_field(browsed: Browsed) -> None:
    bad = _list(browsed.owner, browsed.namespace_id, query="WorkflowType = = 'x'")
    assert bad.status_code == 400
    assert 'id="query-error"' in bad.text
    assert "the query is not valid" in bad.text
    status = _list(browsed.owner, browsed.namespace_id, status="Exploded")
    assert status.status_code == 400
    assert 'id="status-error"' in status.text
    assert "choose a status among Running" in status.text


def test_paging_walks_every_workflow_once(browsed: Browsed) -> None:
    seen: list[str] = []
    response = _list(browsed.owner, browsed.namespace_id, page_size=2)
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        pages += 1
        rows = _ids(response.text)
        assert len(rows) <= 2
        seen += rows
        link = NEXT_LINK.search(response.text)
        if link is None:
            break
        # The token is opaque: sealed, nothing of Temporal's own token shows.
        assert "page=v1%3A" in link.group(1)
        response = browsed.owner.get(unescape(link.group(1)))
    assert pages >= 2
    assert sorted(seen) == sorted([*PRICING_IDS, browsed.charge_id])


def test_a_forged_or_foreign_page_token_is_refused(browsed: Browsed) -> None:
    first = _list(browsed.owner, browsed.namespace_id, page_size=1)
    link = NEXT_LINK.search(first.text)
    assert link is not None
    token = httpx.URL(unescape(link.group(1))).params["page"]
    refusal = "this page link is not valid here"
    # Another tenant's namespace: the token is bound to the namespace it came from.
    foreign = _list(browsed.other_owner, browsed.other_namespace_id, page=token, page_size=1)
    assert foreign.status_code == 400
    assert refusal in foreign.text
    # The same namespace with another query, an altered token, a made-up one.
    other_query = _list(
        browsed.owner, browsed.namespace_id, page=token, page_size=1, status="Running"
    )
    assert other_query.status_code == 400
    assert refusal in other_query.text
    altered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for forged in (altered, "v1:" + "A" * 60, "not-a-token"):
        response = _list(browsed.owner, browsed.namespace_id, page=forged, page_size=1)
        assert response.status_code == 400
        assert refusal in response.text


def _detail(client: httpx.Client, namespace_id: str, workflow_id: str) -> httpx.Response:
    page = _list(client, namespace_id, query=f'WorkflowId="{workflow_id}"')
    links = RUN_LINK.findall(page.text)
    assert len(links) == 1, page.text
    return client.get(unescape(links[0]))


def test_the_detail_shows_input_result_and_history_as_text(browsed: Browsed) -> None:
    # A workflow id with slashes has its own address.
    response = _detail(browsed.owner, browsed.namespace_id, "orders/2026/3")
    assert response.status_code == 200, response.text
    page = response.text
    assert 'data-status="Completed"' in page
    assert "PricingWorkflow" in page
    assert "browse-" in page  # the task queue
    assert "&#34;quantity&#34;: 4" in page  # the input, as JSON
    assert "&#34;total&#34;: 12" in page  # the result, as JSON
    # A payload is text: the hostile string is escaped, never markup.
    assert HOSTILE_NOTE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for event in (
        "WorkflowExecutionStarted",
        "ActivityTaskScheduled",
        "WorkflowExecutionCompleted",
    ):
        assert event in page
    assert "activity type:</span> price_order" in page


def test_the_history_pages_and_refuses_a_token_of_another_run(browsed: Browsed) -> None:
    detail = _detail(browsed.owner, browsed.namespace_id, "order-1")
    base = str(detail.url)
    first = browsed.owner.get(base, params={"history_page_size": 3})
    assert first.status_code == 200
    events = re.findall(r'<td>(\d+)</td>\s*<td class="event-type">(\w+)</td>', first.text)
    # Temporal pages by whole event batches: at least the page size, never the whole run.
    assert 3 <= len(events) < 11
    assert events[0] == ("1", "WorkflowExecutionStarted")
    more = NEXT_LINK.search(first.text)
    assert more is not None
    second = browsed.owner.get(unescape(more.group(1)))
    assert second.status_code == 200
    later = re.findall(r'<td>(\d+)</td>\s*<td class="event-type">(\w+)</td>', second.text)
    assert int(later[0][0]) == int(events[-1][0]) + 1
    # The input still shows on a later page of the history.
    assert "&#34;quantity&#34;: 2" in second.text
    token = httpx.URL(unescape(more.group(1))).params["history_page"]
    other_run = _detail(browsed.owner, browsed.namespace_id, "order-2")
    refused = browsed.owner.get(str(other_run.url), params={"history_page": token})
    assert refused.status_code == 400
    assert "this page link is not valid here" in refused.text


def test_a_running_workflow_shows_its_pending_activity_and_binary_input(
    browsed: Browsed,
) -> None:
    page = _detail(browsed.owner, browsed.namespace_id, browsed.charge_id).text
    assert 'data-status="Running"' in page
    assert f"binary, {len(CARD)} bytes" in page
    assert "No result yet." in page
    row = re.search(
        r"<tr><td>1</td><td>charge_card</td><td>\w+</td><td>(\d+)</td><td>([^<]*)</td>", page
    )
    assert row is not None, page
    assert int(row.group(1)) >= 2
    assert row.group(2) == "card declined"


def test_another_tenants_namespace_or_workflow_is_the_same_404_page(browsed: Browsed) -> None:
    unknown_namespace = f"nothing.{browsed.tenant.account_id}"
    foreign = _list(browsed.owner, browsed.other_namespace_id)
    unknown = _list(browsed.owner, unknown_namespace)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.text == unknown.text
    assert NOT_FOUND_TEXT in foreign.text
    run = f"order-1/{browsed.other_run}"
    foreign_run = browsed.owner.get(f"/namespaces/{browsed.other_namespace_id}/workflows/{run}")
    assert foreign_run.status_code == 404
    assert foreign_run.text == foreign.text
    # The other tenant's workflow id and run id on this tenant's namespace: not found here.
    here = browsed.owner.get(f"/namespaces/{browsed.namespace_id}/workflows/{run}")
    made_up = browsed.owner.get(
        f"/namespaces/{browsed.namespace_id}/workflows/order-1/{uuid.uuid4()}"
    )
    assert here.status_code == made_up.status_code == 404
    assert here.text == made_up.text == foreign.text
    assert "secret" not in here.text


def test_a_read_user_may_browse_and_a_user_without_permission_may_not(
    browsed: Browsed,
) -> None:
    listing = _list(browsed.reader, browsed.namespace_id)
    assert listing.status_code == 200
    assert sorted(_ids(listing.text)) == sorted([*PRICING_IDS, browsed.charge_id])
    detail = _detail(browsed.reader, browsed.namespace_id, "order-1")
    assert detail.status_code == 200
    assert "WorkflowExecutionCompleted" in detail.text
    assert '<form method="post"' not in detail.text.split("Sign out")[1]

    refused = _list(browsed.developer, browsed.namespace_id)
    assert refused.status_code == 404
    assert NOT_FOUND_TEXT in refused.text
    refused_run = browsed.developer.get(str(detail.url))
    assert refused_run.status_code == 404
    assert NOT_FOUND_TEXT in refused_run.text


async def test_a_cell_that_does_not_answer_is_temporarily_unavailable(
    stratus: StratusUp, browsed: Browsed
) -> None:
    """The service's own path to the cell (route, cell, channel), with the cell's address
    swapped for a port nobody listens on: the read is refused as temporarily unavailable (503),
    naming neither the cell nor its address."""

    class RefusingCells(CellChannels):
        async def channel(
            self, cell_id: str, address: str, tls: CellTls | None
        ) -> grpc.aio.Channel:
            return await super().channel(cell_id, f"127.0.0.1:{free_port()}", None)

    box = SecretBox.from_file(stratus.data_dir / "secrets.key", create=False)
    channels = RefusingCells(box)
    engine = create_engine(stratus.database_url)
    try:
        async with unit_of_work(create_sessionmaker(engine)) as session:
            user = (
                await session.execute(select(User).where(User.email == "owner@flows.example"))
            ).scalar_one()
            principal = await user_principal(session, user)
            with pytest.raises(WorkflowsUnavailable) as refused:
                await list_workflows(
                    session, principal, channels, namespace_id=browsed.namespace_id
                )
    finally:
        await channels.close()
        await engine.dispose()
    assert refused.value.status == 503
    assert str(refused.value) == (
        f"namespace {browsed.namespace_id} is temporarily unavailable; retry shortly"
    )


def test_a_namespace_not_active_says_so(browsed: Browsed) -> None:
    page = browsed.activating_page
    assert page.status_code == 409
    assert f"namespace {browsed.other_namespace_id} is ACTIVATING" in page.text
    assert "once it is ACTIVE" in page.text
