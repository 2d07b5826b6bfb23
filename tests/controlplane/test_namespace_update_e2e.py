"""Namespace updates against a real ``stratus up``: client-CA rotation without stopping work,
certificate filters set through the CLI, retention reaching the cell, refusals that change
nothing, and an audit event for every mutation."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import hashes
from product_constants import PROBLEM
from sqlalchemy import select
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    gateway_channel_options,
    http,
    new_tenant,
    run_greeting,
    tls_for,
)
from support_workflows import GreetingWorkflow, compose_greeting
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from auth import KeyPair, generate_ca, generate_leaf
from controlplane.client import StratusClient
from controlplane.kit.db import create_engine, create_sessionmaker
from controlplane.models import AuditEvent


@pytest.fixture(scope="module")
def tenant(stratus: StratusUp) -> Tenant:
    return new_tenant(stratus, "Rotor")


async def _audit_events(stratus: StratusUp, account_id: str) -> list[AuditEvent]:
    engine = create_engine(stratus.database_url)
    statement = (
        select(AuditEvent).where(AuditEvent.account_id == account_id).order_by(AuditEvent.id)
    )
    try:
        async with create_sessionmaker(engine)() as session:
            return list((await session.execute(statement)).scalars())
    finally:
        await engine.dispose()


async def _assert_update_audited(
    stratus: StratusUp, tenant: Tenant, operation_ids: list[str]
) -> None:
    """Each update left a ``namespace.update`` event by the owner and, when its operation
    ended, an ``operation.fulfilled`` event by the control plane."""
    events = await _audit_events(stratus, tenant.account_id)
    for operation_id in operation_ids:
        requested = [
            e
            for e in events
            if e.action == "namespace.update" and e.details["async_operation_id"] == operation_id
        ]
        assert len(requested) == 1, operation_id
        assert requested[0].actor.startswith("user:owner@")
        assert requested[0].request_id
        fulfilled = [
            e for e in events if e.action == "operation.fulfilled" and e.target == operation_id
        ]
        assert len(fulfilled) == 1, operation_id
        assert fulfilled[0].details["operation_type"] == "namespace.update"


def _update(client: StratusClient, namespace_id: str, **fields: Any) -> str:
    """Update with the resource_version just read and wait for FULFILLED (as a user would);
    returns the operation id."""
    namespace = client.get_namespace(namespace_id)
    result = client.update_namespace(
        namespace_id, resource_version=namespace.resource_version, **fields
    )
    assert result.namespace.state == "UPDATING"
    assert result.namespace.resource_version != namespace.resource_version
    assert result.async_operation.operation_type == "namespace.update"
    operation = client.wait_for_operation(result.async_operation.id, timeout=120)
    assert operation.state == "FULFILLED", operation.failure_reason
    assert client.get_namespace(namespace_id).state == "ACTIVE"
    return operation.id


async def _connect(stratus: StratusUp, namespace_id: str, cert: KeyPair) -> Client:
    return await Client.connect(
        stratus.gateway_address, namespace=namespace_id, tls=tls_for(stratus, cert, namespace_id)
    )


async def _greet(client: Client, task_queue: str) -> str:
    result: str = await client.execute_workflow(
        GreetingWorkflow.run,
        "Stratus",
        id=f"greet-{uuid.uuid4()}",
        task_queue=task_queue,
        execution_timeout=dt.timedelta(seconds=60),
    )
    return result


async def test_ca_rotation_keeps_workers_running_and_cuts_off_the_old_ca(
    stratus: StratusUp, tenant: Tenant
) -> None:
    """Add a second CA while a worker of the first runs (it keeps completing workflows, and a
    client of the new CA is admitted), move the worker to the new CA, remove the old one: the
    old CA's still-open connection is refused PERMISSION_DENIED on its next request (the
    gateway re-checks every request), while the new CA's client and worker keep working."""
    namespace_id = create_active_namespace(stratus, tenant, "rotating")
    new_ca = generate_ca("Rotor CA 2")
    new_cert = generate_leaf(new_ca, "Rotor worker 2")
    old_pem, new_pem = tenant.ca.cert_pem.decode(), new_ca.cert_pem.decode()
    task_queue = f"rotation-{uuid.uuid4()}"
    operations: list[str] = []

    old_client = await _connect(stratus, namespace_id, tenant.client_cert)
    async with Worker(
        old_client,
        task_queue=task_queue,
        workflows=[GreetingWorkflow],
        activities=[compose_greeting],
    ):
        assert await _greet(old_client, task_queue) == "Hello, Stratus!"
        with tenant.client(stratus) as api:
            # While the update runs, the old worker keeps serving a workflow started meanwhile.
            in_flight = asyncio.create_task(_greet(old_client, task_queue))
            operations.append(
                await asyncio.to_thread(
                    _update, api, namespace_id, accepted_client_ca=old_pem + new_pem
                )
            )
        assert await in_flight == "Hello, Stratus!"
        new_client = await _connect(stratus, namespace_id, new_cert)
        assert await _greet(new_client, task_queue) == "Hello, Stratus!"

    async with Worker(
        new_client,
        task_queue=task_queue,
        workflows=[GreetingWorkflow],
        activities=[compose_greeting],
    ):
        with tenant.client(stratus) as api:
            operations.append(
                await asyncio.to_thread(_update, api, namespace_id, accepted_client_ca=new_pem)
            )
            assert api.get_namespace(namespace_id).accepted_client_ca == new_pem
        assert await _greet(new_client, task_queue) == "Hello, Stratus!"
        with pytest.raises(RPCError) as refused:
            await old_client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace_id)
            )
        assert refused.value.status == RPCStatusCode.PERMISSION_DENIED
        assert namespace_id in refused.value.message
        # No other namespace trusts the old CA, so a new connection fails the handshake.
        with pytest.raises(RuntimeError):
            await _connect(stratus, namespace_id, tenant.client_cert)

    await _assert_update_audited(stratus, tenant, operations)


def _describe_raw(stratus: StratusUp, namespace_id: str, cert: KeyPair) -> grpc.StatusCode:
    """DescribeNamespace over a fresh mTLS channel; OK or the refusal code."""
    credentials = grpc.ssl_channel_credentials(stratus.gateway_ca, cert.key_pem, cert.cert_pem)
    with grpc.secure_channel(
        stratus.gateway_address, credentials, options=gateway_channel_options(namespace_id)
    ) as channel:
        describe = channel.unary_unary(
            "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace",
            request_serializer=DescribeNamespaceRequest.SerializeToString,
            response_deserializer=lambda raw: raw,
        )
        try:
            describe(DescribeNamespaceRequest(namespace=namespace_id), timeout=30)
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()  # type: ignore[attr-defined]
            return code
    return grpc.StatusCode.OK


async def test_certificate_filters_set_through_the_cli_admit_only_matching_certs(
    stratus: StratusUp, tenant: Tenant
) -> None:
    """`certificate-filters set` with a CN wildcard: a certificate of the accepted CA whose CN
    matches runs workflows, one whose CN does not is refused PERMISSION_DENIED; `clear`
    admits it again."""
    namespace_id = create_active_namespace(stratus, tenant, "filtered")
    matching = generate_leaf(tenant.ca, "worker-7")
    other = generate_leaf(tenant.ca, "intruder")
    result = stratus.cli(
        "-o",
        "json",
        "namespace",
        "certificate-filters",
        "set",
        "--namespace",
        namespace_id,
        "--filter",
        "common_name=worker-*",
        "--filter",
        "subject_alternative_name=*.nowhere.example,organization=Nobody\\, Inc.",
        "--wait",
        api_key=tenant.api_key,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["async_operation"]["state"] == "FULFILLED"
    listed = stratus.cli(
        "namespace",
        "certificate-filters",
        "list",
        "--namespace",
        namespace_id,
        api_key=tenant.api_key,
    )
    assert listed.stdout.splitlines() == [
        "common_name=worker-*",
        # Fields come back in their canonical order.
        "organization=Nobody\\, Inc.,subject_alternative_name=*.nowhere.example",
    ]

    assert await run_greeting(stratus, namespace_id, matching, f"filtered-{uuid.uuid4()}") == (
        "Hello, Stratus!"
    )
    assert await asyncio.to_thread(_describe_raw, stratus, namespace_id, other) == (
        grpc.StatusCode.PERMISSION_DENIED
    )

    cleared = stratus.cli(
        "namespace",
        "certificate-filters",
        "clear",
        "--namespace",
        namespace_id,
        "--wait",
        api_key=tenant.api_key,
    )
    assert cleared.returncode == 0, cleared.stderr
    assert await asyncio.to_thread(_describe_raw, stratus, namespace_id, other) == (
        grpc.StatusCode.OK
    )


async def test_update_publishes_filters_and_bundle_to_gateway_routes(
    stratus: StratusUp, tenant: Tenant
) -> None:
    """Once an update is FULFILLED, the route every gateway reads carries the new bundle and
    the filters in their canonical form; clearing the filters publishes none."""
    namespace_id = create_active_namespace(stratus, tenant, "published")
    bundle = tenant.ca.cert_pem.decode() + generate_ca("Rotor CA published").cert_pem.decode()
    filters: list[dict[str, object]] = [
        {"organizational_unit": "Payments", "common_name": "worker-*"},
        {"subject_alternative_name": "*.acme.com", "organization": None},
    ]
    with tenant.client(stratus) as api:
        operations = [
            await asyncio.to_thread(
                _update, api, namespace_id, accepted_client_ca=bundle, certificate_filters=filters
            )
        ]
        assert api.get_namespace(namespace_id).certificate_filters == [
            {"common_name": "worker-*", "organizational_unit": "Payments"},
            {"subject_alternative_name": "*.acme.com"},
        ]

    def route() -> dict[str, Any]:
        with http(stratus, stratus.operator_key) as operator:
            routes = operator.get("/internal/gateway-routes").json()["routes"]
        [entry] = [r for r in routes if r["namespace_id"] == namespace_id]
        return dict(entry)

    published = route()
    assert published["accepted_client_ca"] == bundle
    assert published["certificate_filters"] == [
        {"common_name": "worker-*", "organizational_unit": "Payments"},
        {"subject_alternative_name": "*.acme.com"},
    ]
    with tenant.client(stratus) as api:
        operations.append(
            await asyncio.to_thread(_update, api, namespace_id, certificate_filters=[])
        )
    assert route()["certificate_filters"] == []
    await _assert_update_audited(stratus, tenant, operations)


async def test_retention_update_through_the_cli_reaches_the_cell(
    stratus: StratusUp, tenant: Tenant
) -> None:
    """`namespace update --retention-days 12 --wait` ends FULFILLED, the API shows 12 days, and
    the cell (asked through the gateway) applies 12 days of retention."""
    namespace_id = create_active_namespace(stratus, tenant, "retained")
    result = stratus.cli(
        "-o",
        "json",
        "namespace",
        "update",
        "--namespace",
        namespace_id,
        "--retention-days",
        "12",
        "--wait",
        api_key=tenant.api_key,
    )
    assert result.returncode == 0, result.stderr
    updated = json.loads(result.stdout)
    assert updated["async_operation"]["state"] == "FULFILLED"
    assert updated["namespace"]["retention_days"] == 12
    assert updated["namespace"]["state"] == "ACTIVE"
    client = await _connect(stratus, namespace_id, tenant.client_cert)
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace_id)
    )
    assert described.config.workflow_execution_retention_ttl.seconds == 12 * 86400
    await _assert_update_audited(stratus, tenant, [updated["async_operation"]["id"]])


def test_cli_ca_commands_add_list_remove_and_refuse_removing_the_last(
    stratus: StratusUp, tenant: Tenant, tmp_path: Path
) -> None:
    """`accepted-client-ca add` appends, `list` shows both by fingerprint, `remove` drops one,
    and removing the last CA is refused locally without an update."""
    namespace_id = create_active_namespace(stratus, tenant, "ca-cli")
    second = generate_ca("Rotor CA cli")
    first_file, second_file = tmp_path / "first.pem", tmp_path / "second.pem"
    first_file.write_bytes(tenant.ca.cert_pem)
    second_file.write_bytes(second.cert_pem)

    def cli(*args: str) -> Any:
        return stratus.cli("namespace", "accepted-client-ca", *args, api_key=tenant.api_key)

    added = cli("add", "--namespace", namespace_id, "--ca-cert", str(second_file), "--wait")
    assert added.returncode == 0, added.stderr
    assert "FULFILLED" in added.stdout
    listed = cli("list", "--namespace", namespace_id)
    fingerprints = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert fingerprints == [
        tenant.ca.certificate.fingerprint(hashes.SHA256()).hex(),
        second.certificate.fingerprint(hashes.SHA256()).hex(),
    ]
    removed = cli("remove", "--namespace", namespace_id, "--ca-cert", str(first_file), "--wait")
    assert removed.returncode == 0, removed.stderr
    with tenant.client(stratus) as api:
        before = api.get_namespace(namespace_id)
    last = cli("remove", "--namespace", namespace_id, "--ca-cert", str(second_file))
    assert last.returncode == 1
    assert "refusing to remove the last accepted CA" in last.stderr
    with tenant.client(stratus) as api:
        assert api.get_namespace(namespace_id).resource_version == before.resource_version


@dataclass
class Careful:
    namespace_id: str
    bystander: Tenant
    foreign_namespace_id: str


@pytest.fixture(scope="module")
def careful(stratus: StratusUp, tenant: Tenant) -> Careful:
    """One namespace of the tenant and one of another account (the bystander)."""
    bystander = new_tenant(stratus, "Bystander")
    return Careful(
        create_active_namespace(stratus, tenant, "careful"),
        bystander,
        create_active_namespace(stratus, bystander, "careful"),
    )


def _state(stratus: StratusUp, tenant: Tenant, namespace_id: str) -> tuple[Any, list[str]]:
    with http(stratus, tenant.api_key) as client:
        namespace = client.get(f"/namespaces/{namespace_id}").json()
        operations = [o["id"] for o in client.get("/operations").json()["operations"]]
    return namespace, operations


LEAF_PEM = generate_leaf(generate_ca("leaf issuer"), "leaf").cert_pem.decode()


@pytest.mark.parametrize(
    ("body", "status", "problem", "field"),
    [
        (
            {"resource_version": "stale", "retention_days": 10},
            409,
            "resource-version-mismatch",
            "resource_version",
        ),
        (
            {"certificate_filters": [{"common_name": "*a*"}]},
            400,
            "invalid-field",
            "certificate_filters",
        ),
        (
            {"certificate_filters": [{"common_name": "w"}] * 26},
            400,
            "invalid-field",
            "certificate_filters",
        ),
        ({"certificate_filters": [{"cn": "worker"}]}, 400, "invalid-field", "certificate_filters"),
        ({"certificate_filters": [{}]}, 400, "invalid-field", "certificate_filters"),
        ({"accepted_client_ca": LEAF_PEM}, 400, "invalid-field", "accepted_client_ca"),
        ({"accepted_client_ca": "not a pem"}, 400, "invalid-field", "accepted_client_ca"),
        ({"retention_days": 91}, 400, "invalid-field", "retention_days"),
        ({"async_operation_id": "bad id!"}, 400, "invalid-field", "async_operation_id"),
        ({"resource_version": None}, 422, "malformed-request", "resource_version"),
    ],
    ids=[
        "stale-resource-version",
        "wildcard-in-the-middle",
        "26-filters",
        "unknown-filter-key",
        "empty-filter",
        "leaf-as-ca",
        "malformed-ca",
        "retention-91",
        "bad-operation-id",
        "missing-resource-version",
    ],
)
async def test_update_refuses_bad_input_and_changes_nothing(
    stratus: StratusUp,
    tenant: Tenant,
    careful: Careful,
    body: dict[str, Any],
    status: int,
    problem: str,
    field: str,
) -> None:
    namespace_id = careful.namespace_id
    before = _state(stratus, tenant, namespace_id)
    audit_before = len(await _audit_events(stratus, tenant.account_id))
    request = {"resource_version": before[0]["resource_version"], **body}
    if request["resource_version"] is None:
        del request["resource_version"]
    with http(stratus, tenant.api_key) as client:
        response = client.post(f"/namespaces/{namespace_id}", json=request)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    payload = response.json()
    assert payload["type"] == PROBLEM + problem
    assert payload["field"] == field
    assert payload["detail"]
    if field == "certificate_filters":
        assert payload["detail"].startswith("certificate_filters: ")
    assert _state(stratus, tenant, namespace_id) == before, "nothing may change or start"
    assert len(await _audit_events(stratus, tenant.account_id)) == audit_before


def test_another_accounts_namespace_is_not_found_and_untouched(
    stratus: StratusUp, tenant: Tenant, careful: Careful
) -> None:
    """Updating another account's namespace answers 404 exactly like a namespace that does not
    exist, even with its real resource_version, and changes nothing."""
    foreign = careful.foreign_namespace_id
    before = _state(stratus, careful.bystander, foreign)
    with http(stratus, tenant.api_key) as client:
        for namespace_id in (foreign, f"nothing-here.{careful.bystander.account_id}"):
            response = client.post(
                f"/namespaces/{namespace_id}",
                json={"resource_version": before[0]["resource_version"], "retention_days": 3},
            )
            assert response.status_code == 404, namespace_id
            assert response.json()["type"] == PROBLEM + "not-found"
    assert _state(stratus, careful.bystander, foreign) == before


def test_updating_namespace_refuses_update_and_delete(stratus: StratusUp, tenant: Tenant) -> None:
    """While an update is applied (UPDATING) another update or a delete is a 409 conflict."""
    namespace_id = create_active_namespace(stratus, tenant, "busy")
    with tenant.client(stratus) as api, http(stratus, tenant.api_key) as client:
        namespace = api.get_namespace(namespace_id)
        started = api.update_namespace(
            namespace_id, resource_version=namespace.resource_version, retention_days=9
        )
        version = started.namespace.resource_version
        again = client.post(
            f"/namespaces/{namespace_id}", json={"resource_version": version, "retention_days": 8}
        )
        deleted = client.delete(f"/namespaces/{namespace_id}")
        assert again.status_code == deleted.status_code == 409
        assert again.json()["type"] == deleted.json()["type"] == PROBLEM + "conflict"
        assert again.json()["field"] == "state"
        operation = api.wait_for_operation(started.async_operation.id, timeout=120)
        assert operation.state == "FULFILLED"
        final = api.get_namespace(namespace_id)
        assert (final.state, final.retention_days) == ("ACTIVE", 9)
