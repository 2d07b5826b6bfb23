"""One tenant's CA material never changes whether another tenant's certificates verify.

Both reported attacks are replayed through the API against a running ``stratus up`` while
the victim's worker keeps running: (a) a CA re-emitted with RFC 1421 PEM headers, which used
to stop the gateway loading its shared trust bundle, and (b) a CA copying the subject (and
key identifier) of the victim's CA, which used to make chain building pick the wrong issuer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from lookalike_pki import leaf_under_copied_key_id, lookalike_ca
from product_constants import PROBLEM
from support import (
    StratusUp,
    Tenant,
    create_active_namespace,
    http,
    new_tenant,
    tls_for,
)
from support_workflows import GreetingWorkflow, compose_greeting
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.worker import Worker


@dataclass
class Victim:
    tenant: Tenant
    namespace_id: str
    client: Client
    task_queue: str


async def _greet(victim: Victim, client: Client | None = None) -> str:
    result: str = await (client or victim.client).execute_workflow(
        GreetingWorkflow.run,
        "Stratus",
        id=f"greet-{uuid.uuid4().hex[:8]}",
        task_queue=victim.task_queue,
    )
    return result


@pytest.fixture(scope="module")
async def victim(stratus: StratusUp) -> AsyncIterator[Victim]:
    """A tenant whose worker runs for the whole module, through every attack."""
    tenant = new_tenant(stratus, "Victim")
    namespace_id = create_active_namespace(stratus, tenant, "payments")
    client = await Client.connect(
        stratus.gateway_address,
        namespace=namespace_id,
        tls=tls_for(stratus, tenant.client_cert, namespace_id),
    )
    task_queue = "victim-queue"
    async with Worker(
        client, task_queue=task_queue, workflows=[GreetingWorkflow], activities=[compose_greeting]
    ):
        running = Victim(tenant, namespace_id, client, task_queue)
        assert await _greet(running) == "Hello, Stratus!"
        yield running


def _with_rfc1421_headers(pem: bytes) -> str:
    lines = pem.decode().strip().splitlines()
    return "\n".join(
        [
            lines[0],
            "Proc-Type: 4,ENCRYPTED",
            "DEK-Info: AES-128-CBC,0123456789ABCDEF0123456789ABCDEF",
            "",
            *lines[1:],
        ]
    )


async def test_ca_with_pem_headers_is_refused_and_the_victim_keeps_working(
    stratus: StratusUp, victim: Victim
) -> None:
    """(a) The header-carrying CA is refused at the API with the reason; the victim's running
    worker and a new connection of the victim both keep working."""
    attacker = new_tenant(stratus, "HeaderAttacker")
    with http(stratus, attacker.api_key) as api:
        response = api.post(
            "/namespaces",
            json={
                "name": "headers",
                "retention_days": 7,
                "accepted_client_ca": _with_rfc1421_headers(attacker.ca.cert_pem),
            },
        )
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"] == PROBLEM + "invalid-field"
    assert problem["field"] == "accepted_client_ca"
    assert problem["detail"] == (
        "accepted_client_ca: certificate #1 has PEM headers or non-base64 text "
        "('Proc-Type: 4,ENCRYPTED'); upload plain CERTIFICATE blocks"
    )

    assert await _greet(victim) == "Hello, Stratus!"
    fresh = await Client.connect(
        stratus.gateway_address,
        namespace=victim.namespace_id,
        tls=tls_for(stratus, victim.tenant.client_cert, victim.namespace_id),
    )
    assert await _greet(victim, fresh) == "Hello, Stratus!"


async def test_lookalike_ca_cannot_change_how_the_victim_verifies(
    stratus: StratusUp, victim: Victim
) -> None:
    """(b) A CA with the victim CA's subject and key identifier is a valid CA: the attacker's
    namespace is created and works for the attacker. The victim's running worker and new
    connections keep working, and neither side's certificate opens the other's namespace."""
    attacker = new_tenant(stratus, "LookalikeAttacker")
    attacker.ca = lookalike_ca(victim.tenant.ca)
    attacker.client_cert = leaf_under_copied_key_id(attacker.ca, "attacker worker")
    # Several namespaces, so that whatever order bundles were once loaded in is covered.
    attacker_namespaces = [
        create_active_namespace(stratus, attacker, name) for name in ("aaa-first", "zzz-last")
    ]

    assert await _greet(victim) == "Hello, Stratus!"
    fresh = await Client.connect(
        stratus.gateway_address,
        namespace=victim.namespace_id,
        tls=tls_for(stratus, victim.tenant.client_cert, victim.namespace_id),
    )
    assert await _greet(victim, fresh) == "Hello, Stratus!"

    own = await Client.connect(
        stratus.gateway_address,
        namespace=attacker_namespaces[0],
        tls=tls_for(stratus, attacker.client_cert, attacker_namespaces[0]),
    )
    described = await own.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=attacker_namespaces[0])
    )
    assert described.namespace_info.name == attacker_namespaces[0]
    # The attacker's certificate does not verify under the victim's name, nor the victim's
    # under the attacker's: each handshake trusts only its own namespace's CAs.
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await Client.connect(
            stratus.gateway_address,
            namespace=victim.namespace_id,
            tls=tls_for(stratus, attacker.client_cert, victim.namespace_id),
        )
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await Client.connect(
            stratus.gateway_address,
            namespace=attacker_namespaces[0],
            tls=tls_for(stratus, victim.tenant.client_cert, attacker_namespaces[0]),
        )
