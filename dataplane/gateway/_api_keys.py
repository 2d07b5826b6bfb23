"""API-key workers: who a bearer key is and what it may do, asked of the control plane.

Answers (good and bad) are cached for ``ttl`` seconds (default 1 s) by the SHA-256 of the key,
so a disabled or deleted key stops working within about a second while a busy worker costs
one control-plane call per second, not one per RPC.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

import httpx

from dataplane.gateway._policy import Permission

VERIFY_PATH = "/api/v1/internal/api-keys/verify"


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    key_id: str
    principal: str
    namespace_permissions: Mapping[str, Permission]


class KeyVerificationUnavailable(Exception):
    """The control plane could not be asked; the call is refused as UNAVAILABLE."""


class KeyVerifier(Protocol):
    async def verify(self, token: str) -> VerifiedKey | None:
        """The key's identity and permissions, or None when it is not (or no longer) valid."""
        ...


def parse_verified(body: object) -> VerifiedKey:
    if not isinstance(body, dict):
        raise TypeError("verification answer is not a JSON object")
    permissions = {
        str(namespace): Permission[str(level).upper()]
        for namespace, level in dict(body["namespace_permissions"]).items()
    }
    return VerifiedKey(
        key_id=str(body["key_id"]),
        principal=str(body["principal"]),
        namespace_permissions=MappingProxyType(permissions),
    )


class HttpKeyVerifier:
    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        ttl: float = 1.0,
        timeout: float = 5.0,
        max_entries: int = 10_000,
    ) -> None:
        self._url = api_url.rstrip("/") + VERIFY_PATH
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), headers={"Authorization": f"Bearer {api_key}"}
        )
        self._ttl = ttl
        self._max_entries = max_entries
        self._cache: dict[bytes, tuple[VerifiedKey | None, float]] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def verify(self, token: str) -> VerifiedKey | None:
        cache_key = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        cached = self._cache.get(cache_key)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            response = await self._client.post(self._url, json={"token": token})
        except httpx.HTTPError as exc:
            raise KeyVerificationUnavailable(repr(exc)) from exc
        if response.status_code == httpx.codes.UNAUTHORIZED:
            verified = None
        elif response.is_success:
            try:
                verified = parse_verified(response.json())
            except (ValueError, KeyError, TypeError) as exc:
                raise KeyVerificationUnavailable(f"bad verification answer: {exc}") from exc
        else:
            raise KeyVerificationUnavailable(f"control plane answered {response.status_code}")
        if len(self._cache) >= self._max_entries:
            self._cache.clear()
        self._cache[cache_key] = (verified, now + self._ttl)
        return verified
