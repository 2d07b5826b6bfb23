"""API keys sprayed at the gateway's API-key endpoint do not reach the control plane at their
rate, and real keys keep working: malformed keys are refused locally, a refused key is cached,
concurrent questions about one key share one verification, a source address that keeps
failing is throttled (RESOURCE_EXHAUSTED), and a key enabled again works within seconds.

Verifications are counted where they happen, by the control plane's own request metrics.
The module runs its own ``stratus up``: throttling 127.0.0.1 must not leak into other tests.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator

import grpc
import grpc.aio
import pytest
from identity_support import service_account_with_key
from product_constants import GATEWAY_CALLER_LIMITS
from support import StratusUp, Tenant, api_key_verifications, free_port, http, new_tenant
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, TLSConfig

pytestmark = pytest.mark.slow  # its `sprayed` fixture runs a whole `stratus up`

DESCRIBE = "/temporal.api.workflowservice.v1.WorkflowService/DescribeNamespace"
UNKNOWN = "the API key is unknown, malformed, expired, disabled or deleted"
MALFORMED = "the API key is malformed: a Stratus API key is stratus_<key id>_<secret>"
THROTTLED = "too many failed API key verifications from 127.0.0.1"
# The gateway's defaults: failures at once, and per second after.
FAILURE_BURST = GATEWAY_CALLER_LIMITS.key_failure_burst
FAILURES_PER_SECOND = GATEWAY_CALLER_LIMITS.key_failures_per_second


def _random_key(rng: random.Random) -> str:
    key_id = "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(12))
    secret = "".join(rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(43))
    return f"stratus_{key_id}_{secret}"


@pytest.fixture(scope="module")
def sprayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StratusUp]:
    up = StratusUp(tmp_path_factory.mktemp("spray"), free_port(), free_port())
    try:
        up.start()
        yield up
    finally:
        up.cleanup()


@pytest.fixture(scope="module")
def keyed(sprayed: StratusUp) -> tuple[Tenant, str]:
    tenant = new_tenant(sprayed, "Sprayed")
    with tenant.client(sprayed) as client, http(sprayed, tenant.api_key) as raw:
        response = raw.post(
            "/namespaces",
            json={
                "name": "keys",
                "accepted_client_ca": tenant.ca.cert_pem.decode(),
                "auth_method": "api_key",
            },
        )
        assert response.status_code == 202, response.text
        operation = client.wait_for_operation(response.json()["async_operation"]["id"])
        assert operation.state == "FULFILLED", operation.failure_reason
    return tenant, str(response.json()["namespace"]["id"])


@pytest.fixture
async def channel(sprayed: StratusUp) -> AsyncIterator[grpc.aio.Channel]:
    """A plain gRPC channel to the API-key endpoint, for keys the SDK would not send."""
    opened = grpc.aio.secure_channel(
        sprayed.gateway_api_key_address, grpc.ssl_channel_credentials(sprayed.gateway_ca)
    )
    try:
        yield opened
    finally:
        await opened.close(None)


async def _call(channel: grpc.aio.Channel, namespace: str, token: str) -> tuple[str, str]:
    body = DescribeNamespaceRequest(namespace=namespace).SerializeToString()
    try:
        await channel.unary_unary(DESCRIBE)(
            body, metadata=(("authorization", f"Bearer {token}"),), timeout=30
        )
    except grpc.aio.AioRpcError as error:
        return error.code().name, error.details() or ""
    return "OK", ""


def _key(sprayed: StratusUp, tenant: Tenant, namespace: str, name: str) -> str:
    _, token = service_account_with_key(
        sprayed,
        tenant.api_key,
        {"name": name, "namespace_scope": {"namespace_id": namespace, "permission": "read"}},
    )
    return token


async def test_malformed_keys_are_refused_without_a_control_plane_call(
    sprayed: StratusUp, keyed: tuple[Tenant, str], channel: grpc.aio.Channel
) -> None:
    _, namespace = keyed
    malformed = [
        "not-a-key",
        "ghp_" + "a" * 36,  # another service's prefix
        "stratus_aaaaaaaaaaaa_" + "A" * 42,  # one secret character short
        "stratus_AAAAAAAAAAAA_" + "A" * 43,  # upper-case key id
        "stratus_aaaaaaaaaaaa_" + "A" * 42 + "!",  # outside the secret's alphabet
        "stratus_session_" + "A" * 43,  # a console session, not an API key
    ]
    before = api_key_verifications(sprayed)
    outcomes = [await _call(channel, namespace, token) for token in malformed]
    assert api_key_verifications(sprayed) == before
    for code, details in outcomes:
        assert code == "UNAUTHENTICATED"
        assert details.startswith(MALFORMED)


async def test_one_unknown_key_costs_one_verification(
    sprayed: StratusUp, keyed: tuple[Tenant, str], channel: grpc.aio.Channel
) -> None:
    """60 calls with the same well-formed unknown key, 30 at once then 30 in a row: one
    verification (shared by the concurrent ones, then cached), each refused UNAUTHENTICATED."""
    _, namespace = keyed
    token = _random_key(random.Random(81))
    before = api_key_verifications(sprayed).get(401, 0)
    started = time.monotonic()
    concurrent = await asyncio.gather(*(_call(channel, namespace, token) for _ in range(30)))
    in_a_row = [await _call(channel, namespace, token) for _ in range(30)]
    elapsed = time.monotonic() - started
    for code, details in [*concurrent, *in_a_row]:
        assert code == "UNAUTHENTICATED"
        assert details.startswith(UNKNOWN)
    # The refusal is cached for 2 s: one verification, or one per 2 s on a very slow machine.
    assert api_key_verifications(sprayed).get(401, 0) - before <= 1 + int(elapsed / 2)


async def test_spray_is_throttled_and_a_real_key_keeps_working(
    sprayed: StratusUp, keyed: tuple[Tenant, str], channel: grpc.aio.Channel
) -> None:
    """600 random well-formed keys from one address, 50 at once, while a real worker's key
    keeps calling: the control plane sees about the failure budget (20 + 5/s), the spray gets
    UNAUTHENTICATED then RESOURCE_EXHAUSTED, the real key gets no error."""
    tenant, namespace = keyed
    real = await Client.connect(
        sprayed.gateway_api_key_address,
        namespace=namespace,
        api_key=_key(sprayed, tenant, namespace, "real-worker"),
        tls=TLSConfig(server_root_ca_cert=sprayed.gateway_ca),
    )
    request = DescribeNamespaceRequest(namespace=namespace)
    await real.workflow_service.describe_namespace(request)
    rng = random.Random(7)
    tokens = [_random_key(rng) for _ in range(600)]
    done = asyncio.Event()

    async def real_worker() -> int:
        calls = 0
        while not done.is_set():
            await real.workflow_service.describe_namespace(request)  # raises on any error
            calls += 1
            await asyncio.sleep(0.01)
        return calls

    async def sprayer(mine: list[str]) -> list[tuple[str, str]]:
        return [await _call(channel, namespace, token) for token in mine]

    before = api_key_verifications(sprayed).get(401, 0)
    started = time.monotonic()
    worker = asyncio.create_task(real_worker())
    sprays = await asyncio.gather(*(sprayer(tokens[i::50]) for i in range(50)))
    elapsed = time.monotonic() - started
    done.set()
    assert await worker > 0
    reached = api_key_verifications(sprayed).get(401, 0) - before

    outcomes = [outcome for spray in sprays for outcome in spray]
    codes = Counter(code for code, _ in outcomes)
    assert set(codes) == {"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}, codes
    for code, details in outcomes:
        assert details.startswith(UNKNOWN if code == "UNAUTHENTICATED" else THROTTLED)
    assert codes["UNAUTHENTICATED"] == reached
    assert reached <= FAILURE_BURST + FAILURES_PER_SECOND * elapsed + 1, (reached, elapsed)
    assert codes["RESOURCE_EXHAUSTED"] >= 600 - reached


async def test_a_key_enabled_again_works_within_seconds(
    sprayed: StratusUp, keyed: tuple[Tenant, str], channel: grpc.aio.Channel
) -> None:
    """Disabled: refused (and that refusal cached). Enabled again: accepted within 4 s — the
    cached refusal lasts 2 s, and the source's failure budget refills at 5 per second even
    right after a spray from the same address."""
    tenant, namespace = keyed
    token = _key(sprayed, tenant, namespace, "toggled")
    # A key never seen valid draws on this address's failure budget, which the spray test
    # before may have spent: RESOURCE_EXHAUSTED (which SDKs retry) until it refills at 5/s.
    first_try = time.monotonic()
    while (outcome := await _call(channel, namespace, token)) != ("OK", ""):
        assert outcome[0] == "RESOURCE_EXHAUSTED", outcome
        assert time.monotonic() - first_try < 4.0, "new key refused for 4 s"
        await asyncio.sleep(0.05)
    key_id = token.split("_")[1]
    with http(sprayed, tenant.api_key) as raw:
        assert raw.post(f"/api-keys/{key_id}/disable").status_code == 200
        disabled_at = time.monotonic()
        outcome = await _call(channel, namespace, token)
        while outcome[0] == "OK" and time.monotonic() - disabled_at < 2.0:
            outcome = await _call(channel, namespace, token)
        assert outcome[0] == "UNAUTHENTICATED", outcome
        assert outcome[1].startswith(UNKNOWN)
        assert raw.post(f"/api-keys/{key_id}/enable").status_code == 200
    enabled_at = time.monotonic()
    while (outcome := await _call(channel, namespace, token)) != ("OK", ""):
        assert outcome[0] in {"UNAUTHENTICATED", "RESOURCE_EXHAUSTED"}, outcome
        assert time.monotonic() - enabled_at < 4.0, "enabled key still refused after 4 s"
        await asyncio.sleep(0.05)
