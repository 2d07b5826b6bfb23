"""What an API key presented to the gateway may cost the control plane.

Every key is a control-plane question (``POST /api/v1/internal/api-keys/verify``), so an
unauthenticated caller spraying random keys could turn the gateway into an amplifier against
the control plane and slow every real key's verification down with it. The guard answers
most questions itself:

- a malformed key (not ``stratus_<12 id chars>_<43 secret chars>``) is refused locally;
- answers are cached by the key's SHA-256: a valid key for ``valid_key_ttl`` (1 s), a refused
  one for ``invalid_key_ttl`` (2 s), so a worker retrying a revoked key costs one call per 2 s
  and a key refused while it did not exist yet works 2 s later;
- concurrent questions about one key share one call (single flight);
- a key not recently valid may only be asked about while its source address (an IPv4
  address or an IPv6 /64) has failure budget left: ``key_failure_burst`` refusals at once,
  refilled at ``key_failures_per_second``; a source out of budget gets RESOURCE_EXHAUSTED
  without any call (a key the control plane accepts gives its token back);
- such calls run at most ``key_verifications_in_flight`` at once, with a bounded queue;
  re-verifying keys that were valid in the last ten minutes has its own lane of the same
  size, so a spray never delays the keys of real workers (nor stops a disabled key from
  being refused within a second of its cache entry expiring).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable

from auth import MalformedApiKey, parse_api_key
from dataplane.gateway._api_keys import KeyVerifier, VerifiedKey
from dataplane.gateway._limits import BucketTable, CallerLimits

# How long a key that verified valid keeps its place in the lane of known keys.
_KNOWN_KEY_SECONDS = 600.0
_MAX_VALID = 16_384
_MAX_INVALID = 65_536


class KeyRefusal(enum.Enum):
    MALFORMED = "malformed"
    # Unknown, expired, disabled or deleted: the control plane said no.
    INVALID = "invalid"


class KeyRefused(Exception):
    def __init__(self, refusal: KeyRefusal) -> None:
        super().__init__(refusal.value)
        self.refusal = refusal


class KeyVerificationThrottled(Exception):
    """The key cannot be asked about now: its source failed too often, or too many
    unknown keys are being verified at once."""


def source_of(peer: str) -> str:
    """The address a gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``) counts under:
    the IPv4 address, or the IPv6 /64 (one host typically holds a whole /64)."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or rest
    if kind == "ipv6":
        host = rest.rpartition(":")[0].strip("[]") or rest
        try:
            address = ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return host
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return kind or peer


class _Expiring:
    """A bounded map whose entries expire; the oldest insertion goes first when full."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[VerifiedKey | None, float]] = OrderedDict()

    def get(self, key: bytes) -> tuple[VerifiedKey | None] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._entries[key]
            return None
        return (entry[0],)

    def put(self, key: bytes, value: VerifiedKey | None, ttl: float) -> None:
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = (value, self._clock() + ttl)

    def discard(self, key: bytes) -> None:
        self._entries.pop(key, None)


class KeyGuard:
    """Verifies API keys through ``verifier`` within the limits above."""

    def __init__(
        self,
        verifier: KeyVerifier,
        limits: CallerLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._verifier = verifier
        self._limits = limits = limits or CallerLimits()
        self._clock = clock
        self._valid = _Expiring(_MAX_VALID, clock)
        self._invalid = _Expiring(_MAX_INVALID, clock)
        self._known = _Expiring(_MAX_VALID, clock)
        self._sources = BucketTable(
            limits.key_failures_per_second, burst=limits.key_failure_burst, clock=clock
        )
        self._unknown_lane = asyncio.Semaphore(limits.key_verifications_in_flight)
        self._known_lane = asyncio.Semaphore(limits.key_verifications_in_flight)
        self._unknown_pending = 0
        self._in_flight: dict[bytes, asyncio.Task[VerifiedKey | None]] = {}

    async def verify(self, token: str, source: str) -> VerifiedKey:
        """The key's identity, or raise :class:`KeyRefused`, :class:`KeyVerificationThrottled`
        or ``KeyVerificationUnavailable`` (the control plane could not answer)."""
        try:
            parse_api_key(token)
        except MalformedApiKey:
            raise KeyRefused(KeyRefusal.MALFORMED) from None
        digest = hashlib.sha256(token.encode()).digest()
        cached = self._valid.get(digest) or self._invalid.get(digest)
        if cached is not None:
            return _known_or_refused(cached[0])
        task = self._in_flight.get(digest)
        if task is None:
            task = self._start(token, digest, source)
        # Shielded: a caller that gives up does not cancel the answer others wait for.
        return _known_or_refused(await asyncio.shield(task))

    def _start(self, token: str, digest: bytes, source: str) -> asyncio.Task[VerifiedKey | None]:
        known = self._known.get(digest) is not None
        bucket = None
        if not known:
            if self._unknown_pending >= self._limits.key_verifications_waiting:
                raise KeyVerificationThrottled(
                    "the gateway is verifying too many unrecognised API keys right now; "
                    "retry shortly"
                )
            bucket = self._sources.bucket(source)
            if not bucket.take(1):
                raise KeyVerificationThrottled(
                    f"too many failed API key verifications from {source}; new keys from this "
                    "address are refused for a few seconds: check that your client sends a "
                    "current key"
                )
            self._unknown_pending += 1
        lane = self._known_lane if known else self._unknown_lane

        async def ask() -> VerifiedKey | None:
            try:
                async with lane:
                    verified = await self._verifier.verify(token)
            except BaseException:
                # The control plane did not answer: not the source's failure.
                if bucket is not None:
                    bucket.give_back(1)
                raise
            finally:
                if not known:
                    self._unknown_pending -= 1
            if verified is None:
                self._known.discard(digest)
                self._valid.discard(digest)
                self._invalid.put(digest, None, self._limits.invalid_key_ttl)
            else:
                if bucket is not None:
                    bucket.give_back(1)
                self._invalid.discard(digest)
                self._valid.put(digest, verified, self._limits.valid_key_ttl)
                self._known.put(digest, verified, _KNOWN_KEY_SECONDS)
            return verified

        task = asyncio.get_running_loop().create_task(ask())
        self._in_flight[digest] = task

        def finished(done: asyncio.Task[VerifiedKey | None]) -> None:
            if self._in_flight.get(digest) is done:
                del self._in_flight[digest]
            if not done.cancelled():
                done.exception()  # retrieved: every waiter may have gone

        task.add_done_callback(finished)
        return task


def _known_or_refused(verified: VerifiedKey | None) -> VerifiedKey:
    if verified is None:
        raise KeyRefused(KeyRefusal.INVALID)
    return verified
