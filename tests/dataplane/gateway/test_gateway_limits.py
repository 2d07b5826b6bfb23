"""Per-namespace rate limits, input limits, malformed input and per-namespace counting."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import TYPE_CHECKING

import grpc
import grpc.aio
import pytest
from gateway_support import route
from prometheus_client import generate_latest
from temporalio.api.command.v1 import message_pb2 as command
from temporalio.api.enums.v1 import CommandType
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1

from dataplane.gateway import Gateway
from dataplane.gateway._key_guard import source_of
from dataplane.gateway._limits import (
    BucketTable,
    Limits,
    NamespaceLimiter,
    RateLimitExceeded,
    TokenBucket,
    actions_of,
)
from dataplane.gateway._methods import METHODS

if TYPE_CHECKING:
    from conftest import Cells, GatewayFactory, Pki, RawChannel

    from auth import KeyPair

SERVICE = "/temporal.api.workflowservice.v1.WorkflowService"
DESCRIBE = f"{SERVICE}/DescribeNamespace"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refills() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock)
    assert all(bucket.take(1) for _ in range(10))
    assert not bucket.take(1)
    clock.now += 0.5
    assert all(bucket.take(1) for _ in range(5))
    assert not bucket.take(1)
    clock.now += 10  # never more than one second's worth
    assert all(bucket.take(1) for _ in range(10))
    assert not bucket.take(1)


def test_limiter_counts_actions_separately_and_per_namespace() -> None:
    clock = FakeClock()
    limiter = NamespaceLimiter(clock)
    limits = Limits(requests_per_second=100, actions_per_second=3)
    limiter.admit("a.x", limits, 3)
    with pytest.raises(RateLimitExceeded, match="exceeded its limit of 3 actions per second"):
        limiter.admit("a.x", limits, 1)
    limiter.admit("a.x", limits, 0)  # a request with no action still passes
    limiter.admit("b.x", limits, 3)  # another namespace has its own buckets


def test_actions_are_estimated_like_temporal_cloud_counts_them() -> None:
    completion = wsv1.RespondWorkflowTaskCompletedRequest(
        commands=[
            command.Command(command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK),
            command.Command(command_type=CommandType.COMMAND_TYPE_START_TIMER),
            command.Command(command_type=CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION),
            command.Command(command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION),
        ]
    )
    assert actions_of("RespondWorkflowTaskCompleted", completion) == 4  # child counts 2
    assert actions_of("StartWorkflowExecution", wsv1.StartWorkflowExecutionRequest()) == 1
    assert (
        actions_of("SignalWithStartWorkflowExecution", wsv1.SignalWorkflowExecutionRequest()) == 2
    )
    assert actions_of("PollWorkflowTaskQueue", wsv1.PollWorkflowTaskQueueRequest()) == 0


async def test_burst_above_rps_is_refused_and_other_namespaces_are_unaffected(
    make_gateway: GatewayFactory, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    limited = dataclasses.replace(
        route(cells.namespace_a, cells.address_a, pki.ca_a),
        limits=Limits(requests_per_second=5, actions_per_second=5),
    )
    gateway, _ = await make_gateway([limited, route(cells.namespace_b, cells.address_b, pki.ca_b)])

    async def burst(client_cert: KeyPair, namespace: str, count: int) -> list[tuple[str, str]]:
        body = wsv1.DescribeNamespaceRequest(namespace=namespace).SerializeToString()
        outcomes = []
        async with raw_channel(gateway.bound_port, client_cert, namespace) as channel:
            call = channel.unary_unary(DESCRIBE)
            for _ in range(count):
                try:
                    await call(body, timeout=10)
                    outcomes.append(("OK", ""))
                except grpc.aio.AioRpcError as error:
                    outcomes.append((error.code().name, error.details() or ""))
        return outcomes

    outcomes_a, outcomes_b = await asyncio.gather(
        burst(pki.client_a, cells.namespace_a, 20), burst(pki.client_b, cells.namespace_b, 20)
    )
    exhausted = [details for code, details in outcomes_a if code == "RESOURCE_EXHAUSTED"]
    assert len(exhausted) >= 10
    assert {code for code, _ in outcomes_a} == {"OK", "RESOURCE_EXHAUSTED"}
    expected = f"namespace {cells.namespace_a} exceeded its limit of 5 requests per second"
    assert all(expected in details for details in exhausted)
    assert {code for code, _ in outcomes_b} == {"OK"}


async def test_oversized_request_is_refused_and_the_gateway_keeps_serving(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
    huge = body + b"\x00" * (5 * 1024 * 1024)
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(DESCRIBE)(huge, timeout=10)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await channel.unary_unary(DESCRIBE)(body, timeout=10)


async def test_oversized_metadata_is_refused_and_the_gateway_keeps_serving(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """A 20 KiB authorization header (CVE-2025-8396's vector) never reaches a handler."""
    body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await channel.unary_unary(DESCRIBE)(
                body, metadata=(("authorization", "Bearer " + "x" * 20_000),), timeout=10
            )
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "metadata size exceeds hard limit" in (refused.value.details() or "")
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        assert await channel.unary_unary(DESCRIBE)(body, timeout=10)


async def test_fuzzed_bodies_get_invalid_argument_and_never_break_the_gateway(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    """Random bytes on every method: each answer is a gRPC status (never a crash or hang)."""
    rng = random.Random(5724)
    paths = sorted(METHODS)
    allowed = {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.OK,
    }
    seen: dict[grpc.StatusCode, tuple[str, bytes]] = {}
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        for _ in range(400):
            path = rng.choice(paths)
            body = rng.randbytes(rng.randint(0, 64))
            try:
                await channel.unary_unary(path)(body, timeout=10)
                seen[grpc.StatusCode.OK] = (path, body)
            except grpc.aio.AioRpcError as error:
                seen[error.code()] = (path, body)
        body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
        assert await channel.unary_unary(DESCRIBE)(body, timeout=10)
    assert set(seen) <= allowed, seen
    assert grpc.StatusCode.INVALID_ARGUMENT in seen


async def test_calls_are_counted_per_namespace_and_method(
    gateway: Gateway, pki: Pki, cells: Cells, raw_channel: RawChannel
) -> None:
    body = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_a).SerializeToString()
    foreign = wsv1.DescribeNamespaceRequest(namespace=cells.namespace_b).SerializeToString()
    ghost = wsv1.DescribeNamespaceRequest(namespace="ghost.nobody").SerializeToString()
    before = generate_latest(gateway.metrics).decode()
    async with raw_channel(gateway.bound_port, pki.client_a) as channel:
        for _ in range(3):
            await channel.unary_unary(DESCRIBE)(body, timeout=10)
        for request in (foreign, ghost):
            with pytest.raises(grpc.aio.AioRpcError):
                await channel.unary_unary(DESCRIBE)(request, timeout=10)
    after = generate_latest(gateway.metrics).decode()

    def value(text: str, labels: str) -> float:
        prefix = f"stratus_gateway_requests_total{{{labels}}} "
        lines = [line for line in text.splitlines() if line.startswith(prefix)]
        return float(lines[0].removeprefix(prefix)) if lines else 0.0

    ok = f'code="OK",method="DescribeNamespace",namespace="{cells.namespace_a}"'
    denied = f'code="PERMISSION_DENIED",method="DescribeNamespace",namespace="{cells.namespace_b}"'
    # namespace_b's refusal is labelled with it: it is routed (one of the gateway's own).
    # Another namespace on A's connection, routed or not, is refused alike and labelled "-".
    unrouted = 'code="PERMISSION_DENIED",method="DescribeNamespace",namespace="-"'
    assert value(after, ok) - value(before, ok) == 3
    assert value(after, denied) - value(before, denied) == 1
    assert value(after, unrouted) - value(before, unrouted) == 1
    assert "ghost.nobody" not in after


def test_bucket_with_a_burst_and_given_back_tokens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5, clock, burst=20)
    assert all(bucket.take(1) for _ in range(20))
    assert not bucket.take(1)
    bucket.give_back(1)
    assert bucket.take(1)
    clock.now += 0.2  # one token at 5 per second
    assert bucket.take(1)
    assert not bucket.take(1)


def test_bucket_table_stays_bounded_dropping_the_least_recently_used() -> None:
    clock = FakeClock()
    table = BucketTable(1, max_entries=3, clock=clock)
    for source in ("a", "b", "c"):
        assert table.bucket(source).take(1)
    assert not table.bucket("a").take(1)  # "a" is now the most recently used
    table.bucket("d")  # drops "b"
    assert len(table) == 3
    assert not table.bucket("a").take(1)
    assert table.bucket("b").take(1)  # a fresh bucket


@pytest.mark.parametrize(
    ("peer", "source"),
    [
        ("ipv4:127.0.0.1:50312", "127.0.0.1"),
        ("ipv6:[::1]:50312", "::/64"),
        ("ipv6:[2001:db8:1:2:aaaa::7]:443", "2001:db8:1:2::/64"),
        ("ipv6:[2001:db8:1:2:bbbb::9]:443", "2001:db8:1:2::/64"),
        ("ipv6:[::ffff:10.1.2.3]:443", "10.1.2.3"),
        ("unix:/tmp/socket", "unix"),
    ],
)
def test_failures_are_counted_per_address_and_per_ipv6_64(peer: str, source: str) -> None:
    assert source_of(peer) == source
