"""Identity and trust: certificates, CA bundles and API keys.

Nothing here depends on the control plane or the data plane.
"""

from auth._api_keys import (
    API_KEY_PREFIX,
    MalformedApiKey,
    NewApiKey,
    api_key_matches,
    generate_api_key,
    hash_api_key,
    parse_api_key,
)
from auth._ca_bundle import (
    MAX_BUNDLE_BYTES,
    MAX_BUNDLE_CERTS,
    CABundle,
    InvalidCABundle,
    client_certificate_accepted,
    parse_ca_bundle,
)
from auth._pki import KeyPair, generate_ca, generate_leaf
from auth._policy import Action, Principal, PrincipalKind, authorize

__all__ = [
    "API_KEY_PREFIX",
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_CERTS",
    "Action",
    "CABundle",
    "InvalidCABundle",
    "KeyPair",
    "MalformedApiKey",
    "NewApiKey",
    "Principal",
    "PrincipalKind",
    "api_key_matches",
    "authorize",
    "client_certificate_accepted",
    "generate_api_key",
    "generate_ca",
    "generate_leaf",
    "hash_api_key",
    "parse_api_key",
    "parse_ca_bundle",
]
