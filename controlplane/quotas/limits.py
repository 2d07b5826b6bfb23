"""The quotas an account has, their defaults and the largest value the operator may set.

No database here: the API schemas and the CLI read these without loading the ORM.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["DEFAULT_QUOTAS", "MAX_QUOTA", "Quota"]


class Quota(enum.StrEnum):
    NAMESPACES = "namespaces"
    USERS = "users"
    SERVICE_ACCOUNTS = "service_accounts"
    API_KEYS_PER_PRINCIPAL = "api_keys_per_principal"
    CONCURRENT_OPERATIONS = "concurrent_operations"
    TAGS_PER_NAMESPACE = "tags_per_namespace"
    GROUPS = "groups"


# The one place the defaults live (Temporal Cloud's published limits where it has one).
DEFAULT_QUOTAS: Mapping[Quota, int] = MappingProxyType(
    {
        Quota.NAMESPACES: 10,
        Quota.USERS: 300,
        Quota.SERVICE_ACCOUNTS: 100,
        Quota.API_KEYS_PER_PRINCIPAL: 20,
        Quota.CONCURRENT_OPERATIONS: 10,
        Quota.TAGS_PER_NAMESPACE: 10,
        Quota.GROUPS: 100,
    }
)
MAX_QUOTA = 100_000
