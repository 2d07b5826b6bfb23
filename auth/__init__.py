"""Identity and trust: principals and the one policy function (`authorize`), certificates, CA
bundles, certificate filters and API keys.

Nothing here depends on the control plane or the data plane.
"""

import importlib
from typing import TYPE_CHECKING

from auth._api_keys import (
    API_KEY_PREFIX,
    MalformedApiKey,
    NewApiKey,
    api_key_matches,
    generate_api_key,
    hash_api_key,
    parse_api_key,
)
from auth._auth_method import AuthMethod
from auth._policy import (
    EVERY,
    GROUP_GRANT_KIND,
    GROUP_ROLES,
    AccountRole,
    Action,
    NamespacePermission,
    Principal,
    PrincipalKind,
    Resource,
    authorize,
    data_plane_permission,
    effective_namespace_permissions,
    may_grant_role,
)
from auth._text import unsafe_character

if TYPE_CHECKING:
    from auth._ca_bundle import (
        MAX_BUNDLE_BYTES,
        MAX_BUNDLE_CERTS,
        CABundle,
        InvalidCABundle,
        client_certificate_accepted,
        parse_ca_bundle,
    )
    from auth._cert_filters import (
        MAX_CERTIFICATE_FILTERS,
        CertificateFilter,
        InvalidCertificateFilters,
        certificate_matches_filters,
        parse_certificate_filters,
    )
    from auth._pki import (
        KeyPair,
        generate_ca,
        generate_leaf,
        generate_private_key_pem,
        issue_server_certificate,
    )
    from auth._secrets import SecretBox, SecretUnreadable

# What needs `cryptography` loads on first use (PEP 562), so that importing the enums and
# the policy (the CLI does) stays cheap.
_LAZY = {
    "MAX_BUNDLE_BYTES": "auth._ca_bundle",
    "MAX_BUNDLE_CERTS": "auth._ca_bundle",
    "CABundle": "auth._ca_bundle",
    "InvalidCABundle": "auth._ca_bundle",
    "client_certificate_accepted": "auth._ca_bundle",
    "parse_ca_bundle": "auth._ca_bundle",
    "MAX_CERTIFICATE_FILTERS": "auth._cert_filters",
    "CertificateFilter": "auth._cert_filters",
    "InvalidCertificateFilters": "auth._cert_filters",
    "certificate_matches_filters": "auth._cert_filters",
    "parse_certificate_filters": "auth._cert_filters",
    "KeyPair": "auth._pki",
    "generate_ca": "auth._pki",
    "generate_leaf": "auth._pki",
    "generate_private_key_pem": "auth._pki",
    "issue_server_certificate": "auth._pki",
    "SecretBox": "auth._secrets",
    "SecretUnreadable": "auth._secrets",
}

__all__ = [
    "API_KEY_PREFIX",
    "EVERY",
    "GROUP_GRANT_KIND",
    "GROUP_ROLES",
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_CERTS",
    "MAX_CERTIFICATE_FILTERS",
    "AccountRole",
    "Action",
    "AuthMethod",
    "CABundle",
    "CertificateFilter",
    "InvalidCABundle",
    "InvalidCertificateFilters",
    "KeyPair",
    "MalformedApiKey",
    "NamespacePermission",
    "NewApiKey",
    "Principal",
    "PrincipalKind",
    "Resource",
    "SecretBox",
    "SecretUnreadable",
    "api_key_matches",
    "authorize",
    "certificate_matches_filters",
    "client_certificate_accepted",
    "data_plane_permission",
    "effective_namespace_permissions",
    "generate_api_key",
    "generate_ca",
    "generate_leaf",
    "generate_private_key_pem",
    "hash_api_key",
    "issue_server_certificate",
    "may_grant_role",
    "parse_api_key",
    "parse_ca_bundle",
    "parse_certificate_filters",
    "unsafe_character",
]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
