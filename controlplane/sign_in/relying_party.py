"""The OIDC relying party: talks to the operator's IdPs (discovery, JWKS, token endpoint).

Protocol messages are built with authlib's RFC 6749/7636 helpers; HTTP goes through the one
``httpx.AsyncClient`` the API builds at start (explicit timeouts). ID tokens are verified by
``auth.oidc.verify_id_token`` (joserfc).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from auth.oidc import IdTokenClaims, IdTokenRejected, verify_id_token
from controlplane.config import OidcProvider
from controlplane.sign_in.errors import IdpUnavailable, OidcCodeExchangeFailed

METADATA_TTL_SECONDS = 3600.0
# An unknown `kid` refetches the JWKS (key rotation), at most this often per IdP.
JWKS_REFETCH_SECONDS = 10.0


@dataclass
class _ProviderCache:
    metadata: dict[str, Any] | None = None
    metadata_at: float = 0.0
    keys: KeySet | None = None
    keys_at: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RelyingParty:
    """One per API process; caches each IdP's discovery document and JWKS."""

    def __init__(self, providers: list[OidcProvider], http: httpx.AsyncClient) -> None:
        self._providers = {provider.name: provider for provider in providers}
        self._http = http
        self._cache = {name: _ProviderCache() for name in self._providers}

    @property
    def providers(self) -> list[OidcProvider]:
        return list(self._providers.values())

    def get(self, name: str) -> OidcProvider | None:
        return self._providers.get(name)

    async def _get_json(self, provider: OidcProvider, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise IdpUnavailable(f"identity provider {provider.name} is unreachable") from error
        if not isinstance(body, dict):
            raise IdpUnavailable(f"identity provider {provider.name} answered garbage")
        return body

    async def metadata(self, provider: OidcProvider) -> dict[str, Any]:
        cache = self._cache[provider.name]
        async with cache.lock:
            if (
                cache.metadata is None
                or time.monotonic() - cache.metadata_at > METADATA_TTL_SECONDS
            ):
                url = provider.issuer_url + "/.well-known/openid-configuration"
                metadata = await self._get_json(provider, url)
                # OIDC Discovery 4.3: the document must name the issuer we asked.
                if metadata.get("issuer") != provider.issuer_url:
                    raise IdpUnavailable(
                        f"identity provider {provider.name}: discovery names another issuer"
                    )
                cache.metadata, cache.metadata_at = metadata, time.monotonic()
            return cache.metadata

    async def _keys(self, provider: OidcProvider, *, refresh: bool) -> KeySet:
        cache = self._cache[provider.name]
        metadata = await self.metadata(provider)
        async with cache.lock:
            stale = time.monotonic() - cache.keys_at > JWKS_REFETCH_SECONDS
            if cache.keys is None or (refresh and stale):
                jwks = await self._get_json(provider, str(metadata["jwks_uri"]))
                try:
                    cache.keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
                except (JoseError, ValueError, KeyError) as error:
                    raise IdpUnavailable(
                        f"identity provider {provider.name} publishes an unusable JWKS"
                    ) from error
                cache.keys_at = time.monotonic()
            return cache.keys

    async def authorization_url(
        self,
        provider: OidcProvider,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_verifier: str,
    ) -> str:
        metadata = await self.metadata(provider)
        url: str = prepare_grant_uri(
            str(metadata["authorization_endpoint"]),
            client_id=provider.client_id,
            response_type="code",
            redirect_uri=redirect_uri,
            scope=provider.scope,
            state=state,
            nonce=nonce,
            code_challenge=create_s256_code_challenge(code_verifier),
            code_challenge_method="S256",
        )
        return url

    async def exchange_code(
        self, provider: OidcProvider, *, code: str, redirect_uri: str, code_verifier: str
    ) -> str:
        """Redeem the authorization code with the PKCE verifier; return the raw ID token."""
        metadata = await self.metadata(provider)
        body: str = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=redirect_uri,
            code_verifier=code_verifier,
        )
        # RFC 6749 2.3.1: client_secret_basic form-encodes id and secret first.
        auth = httpx.BasicAuth(
            quote(provider.client_id, safe=""),
            quote(provider.client_secret.get_secret_value(), safe=""),
        )
        try:
            response = await self._http.post(
                str(metadata["token_endpoint"]),
                content=body,
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
                auth=auth,
            )
        except httpx.HTTPError as error:
            raise IdpUnavailable(f"identity provider {provider.name} is unreachable") from error
        try:
            answer: object = response.json()
        except ValueError:
            answer = None
        token: dict[str, Any] = answer if isinstance(answer, dict) else {}
        if response.is_error or not token:
            reason = (
                f"{token.get('error', response.status_code)}: {token.get('error_description', '')}"
            )
            raise OidcCodeExchangeFailed(
                f"identity provider {provider.name} refused the authorization code ({reason})"
            )
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise OidcCodeExchangeFailed(f"identity provider {provider.name} sent no ID token")
        return id_token

    async def verify(self, provider: OidcProvider, id_token: str, *, nonce: str) -> IdTokenClaims:
        """Verify the ID token; an unknown key id refetches the JWKS once (key rotation)."""
        for refresh in (False, True):
            keys = await self._keys(provider, refresh=refresh)
            try:
                return verify_id_token(
                    id_token,
                    keys=keys,
                    algorithm=provider.id_token_signing_alg,
                    issuer=provider.issuer_url,
                    client_id=provider.client_id,
                    nonce=nonce,
                )
            except IdTokenRejected as rejected:
                if rejected.check != "kid" or refresh:
                    raise
        raise AssertionError("unreachable")
