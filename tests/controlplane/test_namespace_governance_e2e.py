"""Namespace governance against a real ``stratus up`` (issue 15 item 2): delete protection,
tags (set/remove, list filter, quota), custom search attributes applied to the cell (a
workflow started with one is found by a visibility query using it, also after a rename), the
codec server setting and the endpoints in the API output; every refusal exact."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from identity_support import assert_problem
from support import StratusUp, Tenant, http, new_tenant, tls_for
from support_workflows import GreetingWorkflow
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError

from controlplane.exports.exporter import namespace_tags
from controlplane.kit.db import create_engine, create_sessionmaker

pytestmark = pytest.mark.sqlite_only

CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "Governor")


def _wait(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    """Follow the body's async operation to FULFILLED; returns the namespace as it is then."""
    with_op = body["async_operation"]["id"]
    operation = client.get(f"/operations/{with_op}").json()
    for _ in range(1200):
        if operation["state"] in ("FULFILLED", "FAILED"):
            break
        asyncio.run(asyncio.sleep(0.1))
        operation = client.get(f"/operations/{with_op}").json()
    assert operation["state"] == "FULFILLED", operation
    namespace: dict[str, Any] = client.get(f"/namespaces/{body['namespace']['id']}").json()
    return namespace


@pytest.fixture(scope="module")
def namespace(stratus: StratusUp, tenant: Tenant) -> Iterator[dict[str, Any]]:
    """One ACTIVE namespace created with every governance field set."""
    with http(stratus, tenant.api_key) as client:
        created = client.post(
            "/namespaces",
            json={
                "name": "governed",
                "accepted_client_ca": tenant.ca.cert_pem.decode(),
                "lifecycle": {"enable_delete_protection": True},
                "tags": {"team": "payments", "cost-center": "cc-42"},
                "search_attributes": {"CustomerId": "Keyword"},
                "codec_server": {"endpoint": "http://localhost:8888/codec/"},
            },
        )
        assert created.status_code == 202, created.text
        yield _wait(client, created.json())


def test_create_stores_the_spec_and_shows_the_endpoints(
    stratus: StratusUp, tenant: Tenant, namespace: dict[str, Any]
) -> None:
    namespace_id = f"governed.{tenant.account_id}"
    assert namespace["id"] == namespace_id
    assert namespace["lifecycle"] == {"enable_delete_protection": True}
    assert namespace["tags"] == {"cost-center": "cc-42", "team": "payments"}
    assert namespace["search_attributes"] == {"CustomerId": "Keyword"}
    assert namespace["codec_server"] == {
        "endpoint": "http://localhost:8888/codec",
        "pass_access_token": False,
        "include_cross_origin_credentials": False,
    }
    assert namespace["endpoints"] == {
        "mtls_address": f"127.0.0.1:{stratus.gateway_port}",
        "server_name": f"{namespace_id}.stratus.localhost",
        "api_key_address": None,  # an mTLS-only namespace takes no API keys
        "console_url": f"{stratus.api_url}/namespaces/{namespace_id}",
    }


def test_delete_is_refused_while_protected(
    stratus: StratusUp, tenant: Tenant, namespace: dict[str, Any]
) -> None:
    with http(stratus, tenant.api_key) as client:
        refused = client.delete(f"/namespaces/{namespace['id']}")
        assert_problem(refused, 409, "delete-protected")
        assert refused.json()["detail"] == (
            f"namespace {namespace['id']} has delete protection on; turn it off first (update "
            "it with lifecycle.enable_delete_protection=false, or `stratus namespace "
            f"delete-protection disable --namespace {namespace['id']}`), then delete it"
        )
        assert refused.json()["field"] == "lifecycle.enable_delete_protection"
        after = client.get(f"/namespaces/{namespace['id']}").json()
        assert after["state"] == "ACTIVE"
        assert after["resource_version"] == namespace["resource_version"]


def test_tags_are_set_removed_filtered_and_audited(
    stratus: StratusUp, tenant: Tenant, namespace: dict[str, Any]
) -> None:
    path = f"/namespaces/{namespace['id']}/tags"
    with http(stratus, tenant.api_key) as client:
        changed = client.post(
            path, json={"tags_to_upsert": {"env": "prod"}, "tags_to_remove": ["cost-center"]}
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["tags"] == {"env": "prod", "team": "payments"}
        tagged = client.get("/namespaces", params={"tag": "env:prod"}).json()["namespaces"]
        assert [ns["id"] for ns in tagged] == [namespace["id"]]
        assert client.get("/namespaces", params={"tag": "env:dev"}).json()["namespaces"] == []
        page = client.get("/audit-logs")
        assert page.status_code == 200, page.text
        details = [
            event["details"]
            for event in page.json()["audit_logs"]
            if event["action"] == "namespace.tags.update" and event["target"] == namespace["id"]
        ]
        assert {"tags_to_upsert": {"env": "prod"}, "tags_to_remove": ["cost-center"]} in details
    # What the exporter writes in the usage CSV's Tags column for this account's rows.
    exported = asyncio.run(_exported_tags(stratus, tenant.account_id))
    assert exported == {namespace["id"]: {"env": "prod", "team": "payments"}}


async def _exported_tags(stratus: StratusUp, account_id: str) -> dict[str, dict[str, str]]:
    engine = create_engine(stratus.database_url)
    try:
        async with create_sessionmaker(engine)() as session:
            return await namespace_tags(session, account_id)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("body", "detail", "field"),
    [
        (
            {"tags_to_upsert": {"Team": "x"}},
            "tag key 'Team' must be 1-63 lowercase letters, digits, '-', '_' or '.', starting "
            "and ending with a letter or digit",
            "tags_to_upsert",
        ),
        (
            {"tags_to_upsert": {"team": "a b"}},
            "tag value 'a b' of 'team' must be at most 63 lowercase letters, digits, '-', '_' "
            "or '.', starting and ending with a letter or digit",
            "tags_to_upsert",
        ),
        (
            {"tags_to_upsert": {"team": "x"}, "tags_to_remove": ["team"]},
            "tag 'team' is both set and removed; do one",
            "tags_to_remove",
        ),
        ({}, "give tags_to_upsert and/or tags_to_remove", "tags_to_upsert"),
        (
            {"tags_to_upsert": {"team\n": "x"}},
            "tag key 'team\\n' must be 1-63 lowercase letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit",
            "tags_to_upsert",
        ),
    ],
)
def test_bad_tags_are_refused(
    stratus: StratusUp,
    tenant: Tenant,
    namespace: dict[str, Any],
    body: dict[str, Any],
    detail: str,
    field: str,
) -> None:
    with http(stratus, tenant.api_key) as client:
        refused = client.post(f"/namespaces/{namespace['id']}/tags", json=body)
        assert_problem(refused, 400, "invalid-field")
        assert (refused.json()["detail"], refused.json()["field"]) == (detail, field)


def test_tags_beyond_the_quota_are_refused(
    stratus: StratusUp, tenant: Tenant, namespace: dict[str, Any]
) -> None:
    with http(stratus, tenant.api_key) as client:
        before = client.get(f"/namespaces/{namespace['id']}").json()["tags"]
        many = {f"k{i}": "v" for i in range(11 - len(before))}
        refused = client.post(f"/namespaces/{namespace['id']}/tags", json={"tags_to_upsert": many})
        assert_problem(refused, 409, "quota-exceeded")
        assert refused.json()["detail"] == (
            "quota tags_per_namespace exceeded: the namespace would have 11 tags and the limit "
            "is 10; remove one or ask the operator to raise the quota"
        )
        assert client.get(f"/namespaces/{namespace['id']}").json()["tags"] == before
        bad_filter = client.get("/namespaces", params={"tag": "no-colon"})
        assert_problem(bad_filter, 400, "invalid-field")
        assert bad_filter.json()["detail"] == "tag filter must be key:value"


@pytest.mark.parametrize(
    ("overrides", "detail", "field"),
    [
        (
            {"search_attributes": {"WorkflowId": "Keyword"}},
            "search attribute name 'WorkflowId' is reserved by Temporal; choose another name",
            "search_attributes",
        ),
        (
            {"search_attributes": {"TemporalThing": "Keyword"}},
            "search attribute name 'TemporalThing' is reserved by Temporal; choose another name",
            "search_attributes",
        ),
        (
            {"search_attributes": {"Keyword01": "Keyword"}},
            "search attribute name 'Keyword01' is reserved by Temporal; choose another name",
            "search_attributes",
        ),
        (
            {"search_attributes": {"9lives": "Int"}},
            "search attribute name '9lives' must be 1-64 letters, digits or '_', starting with "
            "a letter",
            "search_attributes",
        ),
        (
            # `$` would match before a trailing newline: names are matched whole.
            {"name": "orders\n"},
            "name must start with a lowercase letter, contain only lowercase letters, digits "
            "and '-', and end with a letter or digit",
            "name",
        ),
        (
            {"search_attributes": {"Name\n": "Keyword"}},
            "search attribute name 'Name\\n' must be 1-64 letters, digits or '_', starting "
            "with a letter",
            "search_attributes",
        ),
        (
            {"search_attributes": {f"Count{i}": "Int" for i in range(4)}},
            "at most 3 search attributes of type Int per namespace (4 given)",
            "search_attributes",
        ),
        (
            {"codec_server": {"endpoint": "http://codec.example.com"}},
            "codec_server.endpoint must use https; plain http is allowed only to localhost "
            "(127.0.0.1, ::1), where the browser reaches a codec server on its own machine",
            "codec_server.endpoint",
        ),
        (
            {"codec_server": {"endpoint": "javascript:alert(1)"}},
            "codec_server.endpoint must be an https URL with a host and no credentials, query "
            "or fragment (e.g. https://codec.example.com/acme)",
            "codec_server.endpoint",
        ),
        (
            {"codec_server": {"endpoint": "https://user:pw@codec.example.com"}},
            "codec_server.endpoint must be an https URL with a host and no credentials, query "
            "or fragment (e.g. https://codec.example.com/acme)",
            "codec_server.endpoint",
        ),
        (
            {"tags": {"team": "-x"}},
            "tag value '-x' of 'team' must be at most 63 lowercase letters, digits, '-', '_' "
            "or '.', starting and ending with a letter or digit",
            "tags",
        ),
    ],
)
def test_bad_spec_on_create_is_refused(
    stratus: StratusUp, tenant: Tenant, overrides: dict[str, Any], detail: str, field: str
) -> None:
    body = {"name": "refused", "accepted_client_ca": tenant.ca.cert_pem.decode(), **overrides}
    with http(stratus, tenant.api_key) as client:
        refused = client.post("/namespaces", json=body)
        assert_problem(refused, 400, "invalid-field")
        assert (refused.json()["detail"], refused.json()["field"]) == (detail, field)
        assert client.get(f"/namespaces/refused.{tenant.account_id}").status_code == 404


def test_an_unknown_search_attribute_type_is_a_validation_error(
    stratus: StratusUp, tenant: Tenant
) -> None:
    body = {
        "name": "refused",
        "accepted_client_ca": tenant.ca.cert_pem.decode(),
        "search_attributes": {"Name": "String"},
    }
    with http(stratus, tenant.api_key) as client:
        refused = client.post("/namespaces", json=body)
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"


def test_search_attribute_updates_are_refused_when_they_cannot_apply(
    stratus: StratusUp, tenant: Tenant, namespace: dict[str, Any]
) -> None:
    with http(stratus, tenant.api_key) as client:
        current = client.get(f"/namespaces/{namespace['id']}").json()
        for body, detail, field in [
            (
                {"search_attributes": {"CustomerId": "Int"}},
                "search attribute 'CustomerId' is Keyword; a type cannot change: remove it and "
                "add one under another name",
                "search_attributes",
            ),
            (
                {"rename_search_attributes": {"Nope": "Other"}},
                "cannot rename search attribute 'Nope': the namespace has none of that name",
                "rename_search_attributes",
            ),
        ]:
            refused = client.post(
                f"/namespaces/{namespace['id']}",
                json={"resource_version": current["resource_version"], **body},
            )
            assert_problem(refused, 400, "invalid-field")
            assert (refused.json()["detail"], refused.json()["field"]) == (detail, field)


async def _find(client: Client, query: str) -> list[str]:
    return [execution.id async for execution in client.list_workflows(query)]


async def _start_and_find(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> Client:
    """Start a workflow with CustomerId set (no worker: it stays running) and wait until a
    visibility query on CustomerId finds it."""
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, tenant.client_cert, namespace_id),
    )
    started = False
    for _ in range(300):
        try:
            if not started:
                await client.start_workflow(
                    GreetingWorkflow.run,
                    "x",
                    id="with-customer",
                    task_queue="nobody-polls",
                    search_attributes=TypedSearchAttributes([SearchAttributePair(CUSTOMER, "c-1")]),
                )
                started = True
            if await _find(client, "CustomerId = 'c-1'") == ["with-customer"]:
                return client
        except RPCError:
            pass  # the cell's namespace cache has not loaded the attribute yet
        await asyncio.sleep(0.1)
    raise AssertionError("the workflow was never found by CustomerId")


async def _found_after_rename(client: Client) -> None:
    for _ in range(300):
        try:
            if await _find(client, "Customer = 'c-1'") == ["with-customer"]:
                return
        except RPCError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("the workflow was never found by the renamed attribute")


def test_search_attributes_reach_the_cell_and_survive_a_rename(
    stratus: StratusUp, tenant: Tenant, namespace: dict[str, Any]
) -> None:
    """Created with CustomerId (Keyword): a workflow started with it is found by a query on
    it. Renamed to Customer by an update operation: the same workflow (its stored value) is
    found under the new name. Then removed through the CLI."""
    client = asyncio.run(_start_and_find(stratus, tenant, namespace["id"]))
    with http(stratus, tenant.api_key) as api:
        current = api.get(f"/namespaces/{namespace['id']}").json()
        renamed = api.post(
            f"/namespaces/{namespace['id']}",
            json={
                "resource_version": current["resource_version"],
                "rename_search_attributes": {"CustomerId": "Customer"},
            },
        )
        assert renamed.status_code == 202, renamed.text
        after = _wait(api, renamed.json())
    assert after["search_attributes"] == {"Customer": "Keyword"}
    asyncio.run(_found_after_rename(client))

    listed = stratus.cli(
        "namespace", "search-attribute", "list", "--namespace", namespace["id"],
        api_key=tenant.api_key,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "Customer\tKeyword"
    removed = stratus.cli(
        "-o", "json", "namespace", "search-attribute", "remove", "--namespace", namespace["id"],
        "--name", "Customer", "--wait", api_key=tenant.api_key,
    )  # fmt: skip
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["namespace"]["search_attributes"] == {}


def test_cli_tags_and_delete_protection(
    stratus: StratusUp, tenant: Tenant, namespace: dict[str, Any]
) -> None:
    """`namespace tag set|list|remove` and `namespace list --tag`; `delete-protection
    disable` lets the namespace be deleted (the module's last test)."""
    namespace_id = namespace["id"]

    def cli(*args: str) -> str:
        result = stratus.cli(*args, api_key=tenant.api_key)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    marker = uuid.uuid4().hex[:8]
    cli("namespace", "tag", "set", "--namespace", namespace_id, f"run={marker}")
    assert f"run={marker}" in cli("namespace", "tag", "list", "--namespace", namespace_id)
    assert cli("namespace", "list", "--tag", f"run:{marker}").startswith(namespace_id)
    cli("namespace", "tag", "remove", "--namespace", namespace_id, "run")
    assert "run=" not in cli("namespace", "tag", "list", "--namespace", namespace_id)
    assert cli("namespace", "list", "--tag", f"run:{marker}") == "no namespaces"

    cli("namespace", "delete-protection", "disable", "--namespace", namespace_id, "--wait")
    with http(stratus, tenant.api_key) as client:
        assert client.get(f"/namespaces/{namespace_id}").json()["lifecycle"] == {
            "enable_delete_protection": False
        }
        deleted = client.delete(f"/namespaces/{namespace_id}")
        assert deleted.status_code == 202, deleted.text
