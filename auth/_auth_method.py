"""How a namespace's SDK clients authenticate at the gateway."""

from __future__ import annotations

import enum


# One enum for every layer (API schema, database column, CLI, typed client, gateway); the
# values are what is stored and sent.
class AuthMethod(enum.StrEnum):
    """How a namespace's SDK clients authenticate at the gateway: with a client certificate
    (``mtls``), an API key (``api_key``) or either (``mtls_or_api_key``)."""

    MTLS = "mtls"
    API_KEY = "api_key"
    MTLS_OR_API_KEY = "mtls_or_api_key"

    @property
    def accepts_client_certificates(self) -> bool:
        """Whether the gateway's mTLS endpoint may serve the namespace."""
        return self in (AuthMethod.MTLS, AuthMethod.MTLS_OR_API_KEY)

    @property
    def accepts_api_keys(self) -> bool:
        """Whether the gateway's API-key endpoint may serve the namespace."""
        return self in (AuthMethod.API_KEY, AuthMethod.MTLS_OR_API_KEY)
