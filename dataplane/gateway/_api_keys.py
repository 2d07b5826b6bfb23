"""API-key workers: who a bearer key is and what it may do, asked of the control plane.

:class:`HttpKeyVerifier` asks; ``_key_guard.KeyGuard`` decides when it may ask and caches the
answers.
"""

from __future__ import annotations

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
    """Asks the control plane about each key (no cache: the gateway's key guard holds one)."""

    def __init__(self, api_url: str, api_key: str, *, timeout: float = 5.0) -> None:
        self._url = api_url.rstrip("/") + VERIFY_PATH
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), headers={"Authorization": f"Bearer {api_key}"}
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def verify(self, token: str) -> VerifiedKey | None:
        try:
            response = await self._client.post(self._url, json={"token": token})
        except httpx.HTTPError as exc:
            raise KeyVerificationUnavailable(repr(exc)) from exc
        if response.status_code == httpx.codes.UNAUTHORIZED:
            return None
        if not response.is_success:
            raise KeyVerificationUnavailable(f"control plane answered {response.status_code}")
        try:
            return parse_verified(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyVerificationUnavailable(f"bad verification answer: {exc}") from exc
