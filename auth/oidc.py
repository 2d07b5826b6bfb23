"""OpenID Connect relying-party checks that need no network: ID-token verification and the
secrets a sign-in uses (``state``, ``nonce``, PKCE verifier, session tokens).

The ID token is verified with joserfc against the IdP's JWKS with the algorithm pinned by the
operator (``none`` and HMAC are never accepted), then its claims are checked one by one so a
refusal names the check that failed.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    DecodeError,
    InvalidKeyIdError,
    JoseError,
    MissingAlgorithmError,
    UnsupportedAlgorithmError,
)
from joserfc.jwk import KeySet

__all__ = [
    "ID_TOKEN_ALGORITHMS",
    "SESSION_TOKEN_PREFIX",
    "IdTokenClaims",
    "IdTokenRejected",
    "hash_session_token",
    "new_session_token",
    "new_sign_in_secret",
    "verify_id_token",
]

# Asymmetric algorithms only: an HMAC ID token would be keyed with the client secret, and
# ``none`` is unsigned. The operator pins one per IdP.
ID_TOKEN_ALGORITHMS: Final = frozenset({"RS256", "ES256"})
SESSION_TOKEN_PREFIX: Final = "stratus_session_"  # noqa: S105 - a prefix, not a secret
# Clock skew tolerated on exp/iat/nbf, in seconds.
CLOCK_SKEW: Final = 60


class IdTokenRejected(Exception):
    """The ID token failed ``check`` (``signature``, ``alg``, ``kid``, ``iss``, ``aud``,
    ``azp``, ``exp``, ``iat``, ``nbf``, ``nonce``, ``sub``, ``email``, ``email_verified`` or
    ``format``)."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(message)
        self.check = check
        self.message = message


@dataclass(frozen=True)
class IdTokenClaims:
    """What Stratus uses from a verified ID token."""

    issuer: str
    subject: str
    email: str
    raw: dict[str, Any]


def new_sign_in_secret() -> str:
    """A 256-bit URL-safe random value (state, nonce, PKCE verifier, hand-off codes)."""
    return secrets.token_urlsafe(32)


def new_session_token() -> str:
    """A session token: recognisable prefix + 256 random bits. Only its hash is stored."""
    return SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_session_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _int_claim(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IdTokenRejected(name, f"the ID token has no numeric `{name}` claim")
    return int(value)


def verify_id_token(
    token: str,
    *,
    keys: KeySet,
    algorithm: str,
    issuer: str,
    client_id: str,
    nonce: str,
    now: float | None = None,
) -> IdTokenClaims:
    """Verify signature (``algorithm`` only, key from ``keys``) and the OIDC Core 3.1.3.7 claims;
    require a verified email. Raises :class:`IdTokenRejected` naming the failed check."""
    if algorithm not in ID_TOKEN_ALGORITHMS:
        raise ValueError(f"ID-token algorithm {algorithm!r} is not allowed")
    try:
        decoded = jwt.decode(token, keys, algorithms=[algorithm])
    except (UnsupportedAlgorithmError, MissingAlgorithmError) as error:
        raise IdTokenRejected("alg", f"the ID token is not signed with {algorithm}") from error
    except InvalidKeyIdError as error:
        raise IdTokenRejected(
            "kid", "the ID token is signed by a key the IdP does not publish"
        ) from error
    except BadSignatureError as error:
        raise IdTokenRejected("signature", "the ID token's signature does not verify") from error
    except (DecodeError, JoseError, ValueError) as error:
        raise IdTokenRejected("format", f"the ID token cannot be decoded: {error}") from error
    claims: dict[str, Any] = dict(decoded.claims)
    if decoded.header.get("alg") != algorithm:  # defence in depth: joserfc already pins it
        raise IdTokenRejected("alg", f"the ID token is not signed with {algorithm}")

    if claims.get("iss") != issuer:
        raise IdTokenRejected("iss", f"the ID token was not issued by {issuer}")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise IdTokenRejected("aud", "the ID token is not meant for this client")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise IdTokenRejected("azp", "the ID token has several audiences and another `azp`")

    current = time.time() if now is None else now
    if _int_claim(claims, "exp") <= current - CLOCK_SKEW:
        raise IdTokenRejected("exp", "the ID token has expired")
    if _int_claim(claims, "iat") > current + CLOCK_SKEW:
        raise IdTokenRejected("iat", "the ID token was issued in the future")
    if "nbf" in claims and _int_claim(claims, "nbf") > current + CLOCK_SKEW:
        raise IdTokenRejected("nbf", "the ID token is not valid yet")

    presented = claims.get("nonce")
    if not isinstance(presented, str) or not secrets.compare_digest(
        presented.encode(), nonce.encode()
    ):
        raise IdTokenRejected("nonce", "the ID token's nonce does not match this sign-in")

    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise IdTokenRejected("sub", "the ID token has no subject")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise IdTokenRejected("email", "the ID token carries no email (request scope `email`)")
    if claims.get("email_verified") is not True:
        raise IdTokenRejected("email_verified", "the IdP has not verified this email address")
    return IdTokenClaims(issuer=issuer, subject=subject, email=email.strip().lower(), raw=claims)
