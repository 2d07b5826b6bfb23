"""Rate limits are set by the operator per namespace, shown on the namespace, and enforced by
the gateway for that namespace only."""

from __future__ import annotations

import asyncio
import json

import grpc
import grpc.aio
from product_constants import DEFAULT_REQUESTS_PER_SECOND, PROBLEM
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    gateway_channel_options,
    http,
    new_tenant,
)
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1

DESCRIBE = "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"


async def _burst(stratus: StratusUp, tenant: Tenant, namespace: str, count: int) -> list[str]:
    credentials = grpc.ssl_channel_credentials(
        stratus.gateway_ca, tenant.client_cert.key_pem, tenant.client_cert.cert_pem
    )
    body = wsv1.DescribeNamespaceRequest(namespace=namespace).SerializeToString()
    outcomes = []
    async with grpc.aio.secure_channel(
        stratus.gateway_address, credentials, options=gateway_channel_options(namespace)
    ) as channel:
        call = channel.unary_unary(DESCRIBE)
        for _ in range(count):
            try:
                await call(body, timeout=10)
                outcomes.append("OK")
            except grpc.aio.AioRpcError as error:
                outcomes.append(f"{error.code().name}: {error.details()}")
    return outcomes


async def test_operator_sets_limits_and_the_gateway_enforces_them(stratus: StratusUp) -> None:
    limited_tenant, other_tenant = new_tenant(stratus, "Limited"), new_tenant(stratus, "Free")
    limited = create_active_namespace(stratus, limited_tenant, "busy")
    free = create_active_namespace(stratus, other_tenant, "calm")
    with limited_tenant.client(stratus) as owner:
        shown = owner.get_namespace(limited)
        assert (shown.requests_per_second, shown.actions_per_second) == (2000, 500)

    changed = stratus.cli(
        "-o", "json", "namespace", "set-limits", "--namespace", limited,
        "--requests-per-second", "3", "--actions-per-second", "2", "--wait",
        api_key=stratus.operator_key,
    )  # fmt: skip
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["async_operation"]["state"] == "FULFILLED"
    with limited_tenant.client(stratus) as owner:
        shown = owner.get_namespace(limited)
        assert (shown.requests_per_second, shown.actions_per_second) == (3, 2)
        assert shown.state == "ACTIVE"

    outcomes, others = await asyncio.gather(
        _burst(stratus, limited_tenant, limited, 15), _burst(stratus, other_tenant, free, 15)
    )
    refused = [o for o in outcomes if o != "OK"]
    assert len(refused) >= 8
    assert all(
        o == f"RESOURCE_EXHAUSTED: namespace {limited} exceeded its limit of 3 requests per "
        "second; slow down and retry (limits are shown on the namespace)"
        for o in refused
    )
    assert others == ["OK"] * 15


def test_only_the_operator_sets_limits(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Greedy")
    namespace = create_active_namespace(stratus, tenant, "more")
    body = {"requests_per_second": 100000, "actions_per_second": 100000}
    with http(stratus, tenant.api_key) as owner:
        response = owner.post(f"/namespaces/{namespace}/limits", json=body)
        assert response.status_code == 403
        assert response.json()["type"] == PROBLEM + "forbidden"
        assert (
            owner.get(f"/namespaces/{namespace}").json()["requests_per_second"]
            == DEFAULT_REQUESTS_PER_SECOND
        )
    with http(stratus, stratus.operator_key) as operator:
        response = operator.post(
            f"/namespaces/{namespace}/limits",
            json={"requests_per_second": 0, "actions_per_second": 10},
        )
        assert response.status_code == 400
        assert response.json()["field"] == "requests_per_second"
        response = operator.post("/namespaces/ghost.zzzzz/limits", json=body)
        assert response.status_code == 404
