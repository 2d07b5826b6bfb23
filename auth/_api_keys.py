"""API key format: ``stratus_<key id>_<secret>``.

The ``stratus_`` prefix lets secret scanners recognise a leaked key; the key id (public) finds the
stored row; only a SHA-256 hash of the whole token is stored. The secret carries 256 bits of
entropy, so a fast hash is sufficient (as for GitHub or Stripe tokens) and keeps auth cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

API_KEY_PREFIX = "stratus_"
_TOKEN_RE = re.compile(r"stratus_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: ``token`` is shown once and never stored."""

    key_id: str
    token: str
    token_hash: str


class MalformedApiKey(ValueError):
    """The presented string is not a Stratus API key."""


def hash_api_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    key_id = "".join(secrets.choice(alphabet) for _ in range(12))
    token = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewApiKey(key_id=key_id, token=token, token_hash=hash_api_key(token))


def parse_api_key(token: str) -> str:
    """Return the key id of a well-formed token, or raise :class:`MalformedApiKey`."""
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        raise MalformedApiKey("not a Stratus API key")
    return match.group(1)


def api_key_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(token), stored_hash)
