"""API-key workers through the gateway's API-key endpoint: the key's principal needs the
namespace permission each method requires, the namespace must accept API keys, and a disabled
key stops working within 2 s."""

from __future__ import annotations

import time
import uuid

import pytest
from identity_support import service_account_with_key
from support import StratusUp, Tenant, http, new_tenant, tls_for
from support_workflows import GreetingWorkflow, compose_greeting
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    PollWorkflowTaskQueueRequest,
)
from temporalio.client import Client, TLSConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker


def _create(stratus: StratusUp, tenant: Tenant, name: str, auth_method: str) -> str:
    with tenant.client(stratus) as client, http(stratus, tenant.api_key) as raw:
        response = raw.post(
            "/namespaces",
            json={
                "name": name,
                "accepted_client_ca": tenant.ca.cert_pem.decode(),
                "auth_method": auth_method,
            },
        )
        assert response.status_code == 202, response.text
        operation = client.wait_for_operation(response.json()["async_operation"]["id"])
        assert operation.state == "FULFILLED", operation.failure_reason
    return str(response.json()["namespace"]["id"])


def _scope(namespace: str, permission: str) -> dict[str, str]:
    return {"namespace_id": namespace, "permission": permission}


async def _key_client(stratus: StratusUp, namespace: str, token: str) -> Client:
    return await Client.connect(
        stratus.gateway_api_key_address,
        namespace=namespace,
        api_key=token,
        tls=TLSConfig(server_root_ca_cert=stratus.gateway_ca),
    )


@pytest.fixture(scope="module")
def keyed(stratus: StratusUp) -> tuple[Tenant, str, str]:
    tenant = new_tenant(stratus, "Keyed")
    return (
        tenant,
        _create(stratus, tenant, "keys", "api_key"),
        _create(stratus, tenant, "certs", "mtls"),
    )


async def test_api_key_worker_runs_a_workflow(
    stratus: StratusUp, keyed: tuple[Tenant, str, str]
) -> None:
    """A namespace-scoped service account with `write` runs a worker and a workflow with its
    key through the API-key endpoint (no client certificate)."""
    tenant, namespace, _ = keyed
    _, token = service_account_with_key(
        stratus,
        tenant.api_key,
        {
            "name": "ci-writer",
            "namespace_scope": {"namespace_id": namespace, "permission": "write"},
        },
    )
    client = await _key_client(stratus, namespace, token)
    queue = f"keyed-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client, task_queue=queue, workflows=[GreetingWorkflow], activities=[compose_greeting]
    ):
        result = await client.execute_workflow(
            GreetingWorkflow.run, "Stratus", id=queue, task_queue=queue
        )
    assert result == "Hello, Stratus!"


async def test_read_only_key_may_read_but_not_poll(
    stratus: StratusUp, keyed: tuple[Tenant, str, str]
) -> None:
    tenant, namespace, _ = keyed
    _, token = service_account_with_key(
        stratus,
        tenant.api_key,
        {
            "name": "dashboards",
            "namespace_scope": {"namespace_id": namespace, "permission": "read"},
        },
    )
    client = await _key_client(stratus, namespace, token)
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    assert described.namespace_info.name == namespace
    with pytest.raises(RPCError) as refused:
        await client.workflow_service.poll_workflow_task_queue(
            PollWorkflowTaskQueueRequest(namespace=namespace, task_queue=TaskQueue(name="q"))
        )
    assert refused.value.status == RPCStatusCode.PERMISSION_DENIED
    assert refused.value.message == (
        f"PollWorkflowTaskQueue needs write permission on namespace {namespace}; this API "
        "key's principal holds read"
    )


async def test_key_on_an_mtls_only_namespace_is_unauthenticated(
    stratus: StratusUp, keyed: tuple[Tenant, str, str]
) -> None:
    tenant, keys_namespace, mtls_namespace = keyed
    client = await _key_client(stratus, keys_namespace, tenant.api_key)
    with pytest.raises(RPCError) as refused:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=mtls_namespace)
        )
    assert refused.value.status == RPCStatusCode.UNAUTHENTICATED
    assert refused.value.message.startswith(
        f"namespace {mtls_namespace}: it accepts mTLS client certificates only"
    )


async def test_certificate_on_an_api_key_only_namespace_is_unauthenticated(
    stratus: StratusUp, keyed: tuple[Tenant, str, str]
) -> None:
    """A worker that opens an mTLS connection for a namespace that accepts API keys only is
    refused at connect (the SDK's first call) with what to do instead."""
    tenant, keys_namespace, _ = keyed
    with pytest.raises(RuntimeError) as refused:
        await Client.connect(
            stratus.gateway_address,
            namespace=keys_namespace,
            tls=tls_for(stratus, tenant.client_cert, keys_namespace),
        )
    assert "Unauthenticated" in str(refused.value)
    assert f"namespace {keys_namespace}: it accepts API keys only" in str(refused.value)


async def test_other_accounts_key_and_bad_keys_are_refused(
    stratus: StratusUp, keyed: tuple[Tenant, str, str]
) -> None:
    _, namespace, _ = keyed
    stranger = new_tenant(stratus, "Stranger")
    with pytest.raises(RuntimeError, match="API key is not accepted for any namespace"):
        await _key_client(stratus, namespace, stranger.api_key)
    own = _create(stratus, stranger, "own", "api_key")
    client = await _key_client(stratus, own, stranger.api_key)
    with pytest.raises(RPCError) as denied:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
    assert denied.value.status == RPCStatusCode.PERMISSION_DENIED
    assert f"has no permission on namespace {namespace}" in denied.value.message
    with pytest.raises(RuntimeError, match="unknown, malformed, expired, disabled or deleted"):
        await _key_client(stratus, namespace, "stratus_aaaaaaaaaaaa_" + "A" * 43)


async def test_disabled_key_stops_working_within_two_seconds(
    stratus: StratusUp, keyed: tuple[Tenant, str, str]
) -> None:
    tenant, namespace, _ = keyed
    service_account, token = service_account_with_key(
        stratus,
        tenant.api_key,
        {"name": "rotating", "namespace_scope": _scope(namespace, "read")},
    )
    client = await _key_client(stratus, namespace, token)
    request = DescribeNamespaceRequest(namespace=namespace)
    await client.workflow_service.describe_namespace(request)
    key_id = token.split("_")[1]
    with http(stratus, tenant.api_key) as raw:
        assert raw.post(f"/api-keys/{key_id}/disable").status_code == 200
    disabled_at = time.monotonic()
    refusal: RPCError | None = None
    while refusal is None and time.monotonic() - disabled_at < 2.0:
        try:
            await client.workflow_service.describe_namespace(request)
        except RPCError as error:
            refusal = error
    assert refusal is not None, "disabled key still accepted after 2 s"
    assert refusal.status == RPCStatusCode.UNAUTHENTICATED
    assert service_account["id"]


async def test_auth_method_set_through_the_cli_opens_the_api_key_endpoint(
    stratus: StratusUp,
) -> None:
    """An mTLS namespace switched to `mtls_or_api_key` with the CLI serves API-key workers."""
    tenant = new_tenant(stratus, "Switch")
    namespace = _create(stratus, tenant, "both", "mtls")
    # The SDK's connect needs one namespace the key may use.
    keyed_namespace = _create(stratus, tenant, "keyed", "api_key")
    client = await _key_client(stratus, keyed_namespace, tenant.api_key)
    request = DescribeNamespaceRequest(namespace=namespace)
    with pytest.raises(RPCError) as before:
        await client.workflow_service.describe_namespace(request)
    assert before.value.status == RPCStatusCode.UNAUTHENTICATED
    switched = stratus.cli(
        "namespace", "auth-method", "set", "--namespace", namespace,
        "--method", "mtls_or_api_key", "--wait",
        api_key=tenant.api_key,
    )  # fmt: skip
    assert switched.returncode == 0, switched.stderr
    with tenant.client(stratus) as api:
        assert api.get_namespace(namespace).auth_method == "mtls_or_api_key"
    described = await client.workflow_service.describe_namespace(request)
    assert described.namespace_info.name == namespace
