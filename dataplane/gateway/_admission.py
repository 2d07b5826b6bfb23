"""Per-namespace admission of client certificates, with a bounded decision cache."""

from __future__ import annotations

import hashlib
import time

from auth import CABundle, client_certificate_accepted


class Admissions:
    """Decides whether a client certificate may use a namespace.

    The TLS handshake only proved the certificate chains to *some* routed bundle; this binds
    it to the bundle of the namespace in the request. Verifying a signature costs far more
    than the proxying itself, so decisions are cached by (certificate sha256, namespace,
    bundle fingerprint): a changed bundle is a new key. Entries expire after ``ttl`` seconds
    so a certificate that expires stops being accepted.
    """

    def __init__(self, *, max_entries: int = 16_384, ttl: float = 60.0) -> None:
        self._max_entries = max_entries
        self._ttl = ttl
        self._decisions: dict[tuple[bytes, str, str], tuple[bool, float]] = {}

    @staticmethod
    def certificate_id(cert_pem: bytes) -> bytes:
        return hashlib.sha256(cert_pem).digest()

    def accepted(self, cert_pem: bytes, cert_id: bytes, namespace: str, bundle: CABundle) -> bool:
        key = (cert_id, namespace, bundle.fingerprint)
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        decision = client_certificate_accepted(cert_pem, bundle)
        if cached is None and len(self._decisions) >= self._max_entries:
            # Evict the oldest insertion; dicts keep insertion order.
            del self._decisions[next(iter(self._decisions))]
        self._decisions[key] = (decision, now + self._ttl)
        return decision
