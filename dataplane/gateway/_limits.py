"""Per-namespace rate limits: requests per second (RPS) and actions per second (APS).

Token buckets in the gateway, refilled continuously, holding at most one second's worth of
tokens (so a burst up to the limit passes, a sustained excess does not). Only admitted calls
draw from a namespace's buckets, so nobody can exhaust another tenant's limit. A long poll
draws one request when it starts and nothing while it waits.

Actions are estimated from the request the way Temporal Cloud counts them (a started workflow,
a signal, a query, an update, a heartbeat, each activity or timer or child workflow command,
...). This estimate only throttles; billing counts the cells' own ``action`` counter.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from google.protobuf.message import Message
from temporalio.api.enums.v1 import CommandType

DEFAULT_REQUESTS_PER_SECOND = 2000
DEFAULT_ACTIONS_PER_SECOND = 500


class TokenBucket:
    """Refills at ``rate`` tokens per second up to ``burst`` (default: one second's worth)."""

    __slots__ = ("_burst", "_clock", "_rate", "_stamp", "_tokens")

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        burst: float | None = None,
    ) -> None:
        self._rate = rate
        self._burst = rate if burst is None else burst
        self._clock = clock
        self._tokens = self._burst
        self._stamp = clock()

    @property
    def rate(self) -> float:
        return self._rate

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def take(self, amount: float) -> bool:
        """Take ``amount`` tokens if available now; False (and nothing taken) otherwise."""
        self._refill()
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False

    def give_back(self, amount: float) -> None:
        """Return tokens taken for something that turned out not to count."""
        self._tokens = min(self._burst, self._tokens + amount)


class BucketTable:
    """Token buckets by key (a caller, a source address), at most ``max_entries`` of them.

    The least recently used bucket is dropped when a new key arrives at a full table, so the
    table cannot grow without bound whatever keys callers present; a dropped bucket starts
    full again, which only matters to someone holding more keys than the table has room for.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        max_entries: int = 65_536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._max_entries = max_entries
        self._clock = clock
        self._buckets: OrderedDict[object, TokenBucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def bucket(self, key: object) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_entries:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = TokenBucket(self._rate, self._clock, burst=self._burst)
        else:
            self._buckets.move_to_end(key)
        return bucket


@dataclass(frozen=True, slots=True)
class CallerLimits:
    """Limits the gateway holds per caller or per source address rather than per namespace
    (gateway settings, the same for every tenant)."""

    # Calls of methods without a namespace (GetSystemInfo, GetSearchAttributes,
    # ListNamespaces, GetClusterInfo) per caller identity (certificate or API key).
    namespaceless_requests_per_second: int = 100
    # API keys the control plane refused, per source address: a sustained rate and a burst.
    key_failures_per_second: float = 5.0
    key_failure_burst: int = 20
    # Control-plane verifications of keys not recently valid, at once and waiting.
    key_verifications_in_flight: int = 4
    key_verifications_waiting: int = 256
    # How long a verification answer is reused: a disabled key stops within ``valid_key_ttl``
    # (plus one verification), a key refused earlier is asked about again after
    # ``invalid_key_ttl``.
    valid_key_ttl: float = 1.0
    invalid_key_ttl: float = 2.0


_COMMAND_ACTIONS: Mapping[int, int] = MappingProxyType(
    {
        CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK: 1,
        CommandType.COMMAND_TYPE_START_TIMER: 1,
        CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION: 2,
        CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: 1,
        CommandType.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: 1,
        CommandType.COMMAND_TYPE_RECORD_MARKER: 1,
        CommandType.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: 1,
        CommandType.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES: 1,
        CommandType.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION: 1,
        CommandType.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION: 1,
    }
)
_REQUEST_ACTIONS: Mapping[str, int] = MappingProxyType(
    {
        "StartWorkflowExecution": 1,
        "SignalWorkflowExecution": 1,
        "SignalWithStartWorkflowExecution": 2,
        "QueryWorkflow": 1,
        "UpdateWorkflowExecution": 1,
        "RecordActivityTaskHeartbeat": 1,
        "RecordActivityTaskHeartbeatById": 1,
        "RequestCancelWorkflowExecution": 1,
        "RespondActivityTaskFailed": 1,
        "RespondActivityTaskFailedById": 1,
        "CreateSchedule": 1,
        "StartBatchOperation": 1,
        "StartActivityExecution": 1,
        "StartNexusOperationExecution": 1,
    }
)


def actions_of(method: str, message: Message) -> int:
    """Estimated billable actions of one request."""
    if method == "RespondWorkflowTaskCompleted":
        commands = getattr(message, "commands", ())
        return sum(_COMMAND_ACTIONS.get(command.command_type, 0) for command in commands)
    if method == "ExecuteMultiOperation":
        return len(getattr(message, "operations", ()))
    return _REQUEST_ACTIONS.get(method, 0)


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_second: int = DEFAULT_REQUESTS_PER_SECOND
    actions_per_second: int = DEFAULT_ACTIONS_PER_SECOND


class RateLimitExceeded(Exception):
    def __init__(self, namespace: str, limit: str, rate: int) -> None:
        super().__init__(f"namespace {namespace} exceeded its limit of {rate} {limit}")
        self.limit = limit
        self.rate = rate


class NamespaceLimiter:
    """One RPS and one APS bucket per namespace; rebuilt when a namespace's limits change."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[Limits, TokenBucket, TokenBucket]] = {}

    def retain(self, namespaces: set[str]) -> None:
        """Forget namespaces no longer routed."""
        for namespace in [n for n in self._buckets if n not in namespaces]:
            del self._buckets[namespace]

    def admit(self, namespace: str, limits: Limits, actions: int) -> None:
        """Draw one request and ``actions`` actions, or raise :class:`RateLimitExceeded`."""
        entry = self._buckets.get(namespace)
        if entry is None or entry[0] != limits:
            entry = (
                limits,
                TokenBucket(limits.requests_per_second, self._clock),
                TokenBucket(limits.actions_per_second, self._clock),
            )
            self._buckets[namespace] = entry
        _, requests, action_bucket = entry
        if not requests.take(1):
            raise RateLimitExceeded(namespace, "requests per second", limits.requests_per_second)
        if actions and not action_bucket.take(actions):
            raise RateLimitExceeded(namespace, "actions per second", limits.actions_per_second)
