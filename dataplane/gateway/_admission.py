"""Per-namespace admission of client certificates, with a bounded decision cache."""

from __future__ import annotations

import enum
import hashlib
import time

from cryptography import x509

from auth import (
    CABundle,
    CertificateFilter,
    certificate_matches_filters,
    client_certificate_accepted,
)


class Decision(enum.Enum):
    ADMITTED = "admitted"
    # The certificate does not chain to a CA of the namespace's bundle.
    UNTRUSTED = "untrusted"
    # It chains to an accepted CA but matches none of the namespace's certificate filters.
    FILTERED = "filtered"
    # The namespace does not accept this way of authenticating (mTLS vs API key).
    WRONG_AUTH_METHOD = "wrong_auth_method"
    # The mTLS connection was opened (by its TLS server name) for another namespace.
    OTHER_CONNECTION = "other_connection"


class Admissions:
    """Decides whether a client certificate may use a namespace.

    The TLS handshake verified the certificate against the CAs of the namespace the
    connection names; this re-checks it, per request, against that namespace's current bundle
    (which may have changed since the handshake) and its certificate filters. Verifying a
    signature costs far more than the proxying itself, so decisions are cached by
    (certificate sha256, namespace, bundle fingerprint, filters): a changed bundle or filter
    set is a new key. Entries expire after ``ttl`` seconds so a certificate that expires stops
    being accepted.
    """

    def __init__(self, *, max_entries: int = 16_384, ttl: float = 60.0) -> None:
        self._max_entries = max_entries
        self._ttl = ttl
        self._decisions: dict[
            tuple[bytes, str, str, tuple[CertificateFilter, ...]], tuple[Decision, float]
        ] = {}

    @staticmethod
    def certificate_id(cert_pem: bytes) -> bytes:
        return hashlib.sha256(cert_pem).digest()

    def decide(
        self,
        cert_pem: bytes,
        cert_id: bytes,
        namespace: str,
        bundle: CABundle,
        filters: tuple[CertificateFilter, ...] = (),
    ) -> Decision:
        key = (cert_id, namespace, bundle.fingerprint, filters)
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        decision = _decide(cert_pem, bundle, filters)
        if cached is None and len(self._decisions) >= self._max_entries:
            # Evict the oldest insertion; dicts keep insertion order.
            del self._decisions[next(iter(self._decisions))]
        self._decisions[key] = (decision, now + self._ttl)
        return decision

    def accepted(
        self,
        cert_pem: bytes,
        cert_id: bytes,
        namespace: str,
        bundle: CABundle,
        filters: tuple[CertificateFilter, ...] = (),
    ) -> bool:
        return self.decide(cert_pem, cert_id, namespace, bundle, filters) is Decision.ADMITTED


def _decide(cert_pem: bytes, bundle: CABundle, filters: tuple[CertificateFilter, ...]) -> Decision:
    if not client_certificate_accepted(cert_pem, bundle):
        return Decision.UNTRUSTED
    if filters and not certificate_matches_filters(
        x509.load_pem_x509_certificate(cert_pem), filters
    ):
        return Decision.FILTERED
    return Decision.ADMITTED
