"""Namespace governance in the console over HTTP: the settings page shows delete protection and
turns it off through the same update as the API (audited there); the delete form is replaced by
a notice while protected and a forged delete gets the API's refusal on the page; a `read` user
sees no control; the workflow page of a namespace with a codec server widens connect-src to
that origin alone and offers the decode control for its encoded payloads."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from console_support import csrf_token, html_page, namespace_reader, signed_in
from support import StratusUp, Tenant, http, new_tenant, tls_for, wait_until
from temporalio.client import Client

from controlplane.console import CONTENT_SECURITY_POLICY
from controlplane.namespaces.schemas import CodecServerSpec

pytestmark = pytest.mark.sqlite_only


@pytest.fixture(scope="module")
def governed(stratus: StratusUp) -> Iterator[tuple[Tenant, str, httpx.Client]]:
    """A tenant's ACTIVE namespace with delete protection on and a loopback codec server, and
    its owner signed in to the console."""
    tenant = new_tenant(stratus, "Steward")
    with tenant.client(stratus) as client:
        created = client.create_namespace(
            "protected",
            tenant.ca.cert_pem.decode(),
            delete_protection=True,
            codec_server=CodecServerSpec(endpoint="http://127.0.0.1:9/codec"),
        )
        operation = client.wait_for_operation(created.async_operation.id, timeout=120)
        assert operation.state == "FULFILLED", operation.failure_reason
    owner = signed_in(stratus, tenant.api_key)
    try:
        yield tenant, created.namespace.id, owner
    finally:
        owner.close()


def _settings_form(page: str) -> dict[str, Any]:
    version = re.search(r'name="resource_version" value="([^"]+)"', page)
    assert version
    return {
        "resource_version": version.group(1),
        "retention_days": "30",
        "auth_method": "mtls",
        "filter_cn": "",
        "filter_o": "",
        "filter_ou": "",
        "filter_san": "",
    }


def test_protection_is_shown_and_a_delete_is_refused_on_the_page(
    stratus: StratusUp, governed: tuple[Tenant, str, httpx.Client]
) -> None:
    _, namespace_id, owner = governed
    page = html_page(owner.get(f"/namespaces/{namespace_id}"))
    assert re.search(
        r'id="delete_protection" name="delete_protection" type="checkbox"[^>]* checked', page
    )
    assert "Delete protection is on: turn it off in Settings" in page
    assert 'action="/namespaces/' + namespace_id + '/delete"' not in page

    forged = owner.post(
        f"/namespaces/{namespace_id}/delete",
        data={
            "csrf_token": csrf_token(owner),
            "resource_version": _settings_form(page)["resource_version"],
            "confirm_name": "protected",
        },
    )
    text = html_page(forged, 409)
    assert f"namespace {namespace_id} has delete protection on; turn it off first" in text


def test_a_reader_sees_the_setting_but_no_control(
    stratus: StratusUp, governed: tuple[Tenant, str, httpx.Client]
) -> None:
    tenant, namespace_id, _ = governed
    _, reader_key = namespace_reader(stratus, tenant, namespace_id, "reader@steward.example")
    reader = signed_in(stratus, reader_key)
    try:
        page = html_page(reader.get(f"/namespaces/{namespace_id}"))
    finally:
        reader.close()
    assert "<dt>Delete protection</dt>\n  <dd>on</dd>" in page
    assert 'name="delete_protection"' not in page


async def _start_with_bytes(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> str:
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, tenant.client_cert, namespace_id),
    )
    handle = await client.start_workflow(
        "Anything", b"secret-order-42", id="encoded-input", task_queue="nobody-polls"
    )
    assert handle.result_run_id is not None
    return handle.result_run_id


def test_the_workflow_page_may_reach_the_codec_server_only(
    stratus: StratusUp, governed: tuple[Tenant, str, httpx.Client]
) -> None:
    tenant, namespace_id, owner = governed
    run_id = asyncio.run(_start_with_bytes(stratus, tenant, namespace_id))
    path = f"/namespaces/{namespace_id}/workflows/encoded-input/{run_id}"
    wait_until(lambda: owner.get(path).status_code == 200, timeout=30)
    response = owner.get(path)
    assert response.headers["content-security-policy"] == (
        f"{CONTENT_SECURITY_POLICY}; connect-src 'self' http://127.0.0.1:9"
    )
    page = response.text
    assert 'data-codec-endpoint="http://127.0.0.1:9/codec"' in page
    assert 'data-codec-credentials="omit"' in page
    assert "Decode with codec server" in page
    assert re.search(r'data-payload="\{&#34;data&#34;: &#34;c2VjcmV0LW9yZGVyLTQy&#34;', page)
    # Every other console page keeps the strict policy.
    html_page(owner.get(f"/namespaces/{namespace_id}/workflows"))


def test_turning_protection_off_in_settings_updates_the_namespace(
    stratus: StratusUp, governed: tuple[Tenant, str, httpx.Client]
) -> None:
    """Runs last: the unticked checkbox turns protection off (one namespace.update)."""
    tenant, namespace_id, owner = governed
    page = html_page(owner.get(f"/namespaces/{namespace_id}"))
    saved = owner.post(
        f"/namespaces/{namespace_id}/settings",
        data={"csrf_token": csrf_token(owner), **_settings_form(page)},
    )
    assert saved.status_code == 303, saved.text
    with http(stratus, tenant.api_key) as client:
        namespace = client.get(f"/namespaces/{namespace_id}").json()
        assert namespace["lifecycle"] == {"enable_delete_protection": False}
        events = client.get("/audit-logs").json()["audit_logs"]
    assert any(
        event["action"] == "namespace.update"
        and event["target"] == namespace_id
        and event["details"].get("delete_protection") is False
        for event in events
    )
