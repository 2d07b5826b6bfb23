"""Values the tests share with the product, imported from where the product defines them.

A test that re-types a production constant keeps passing against its own copy when the product
changes; importing it leaves one definition. Wire text a test pins on purpose (problem slugs,
refusal messages) stays literal in the tests.
"""

from __future__ import annotations

import datetime as dt

from auth import MAX_BUNDLE_BYTES, MAX_BUNDLE_CERTS, MAX_CERTIFICATE_FILTERS
from controlplane.config import Settings
from controlplane.kit.errors import PROBLEM_BASE
from controlplane.models.namespace import DEFAULT_ACTIONS_PER_SECOND, DEFAULT_REQUESTS_PER_SECOND
from controlplane.quotas.limits import DEFAULT_QUOTAS
from dataplane.gateway import CallerLimits

__all__ = [
    "API_MAX_BODY_BYTES",
    "DEFAULT_ACTIONS_PER_SECOND",
    "DEFAULT_QUOTA_LIMITS",
    "DEFAULT_REQUESTS_PER_SECOND",
    "GATEWAY_CALLER_LIMITS",
    "INVOICE_GRACE",
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_CERTS",
    "MAX_CERTIFICATE_FILTERS",
    "PROBLEM",
]

# Every API error's problem+json `type` is PROBLEM + its slug ("not-found", ...).
PROBLEM = PROBLEM_BASE
# An account's quotas before the operator sets any, by the names the API shows.
DEFAULT_QUOTA_LIMITS = {quota.value: limit for quota, limit in DEFAULT_QUOTAS.items()}
# Settings' defaults (what a test's `stratus up` runs with unless it sets the variable).
INVOICE_GRACE = dt.timedelta(hours=Settings.model_fields["invoice_grace_hours"].default)
API_MAX_BODY_BYTES: int = Settings.model_fields["api_max_body_bytes"].default
# The gateway's per-caller limits (API-key failure budget, verification cache lifetimes).
GATEWAY_CALLER_LIMITS = CallerLimits()
