"""Validation of tenant CA bundles and per-namespace client-certificate checks."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

MAX_BUNDLE_BYTES = 32 * 1024
MAX_BUNDLE_CERTS = 16
_PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
_STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)


class InvalidCABundle(ValueError):
    """The bundle is not an acceptable set of CA certificates; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CABundle:
    """A validated bundle of CA certificates that a namespace accepts for client certificates."""

    pem: str
    certificates: tuple[x509.Certificate, ...]
    fingerprint: str


def parse_ca_bundle(pem: str, *, now: dt.datetime | None = None) -> CABundle:
    """Parse and validate a PEM CA bundle.

    Every certificate must parse, be a CA (``basicConstraints CA:true``), be valid now and be
    signed with SHA-256 or stronger; at most 16 certificates and 32 KB.
    """
    if len(pem.encode()) > MAX_BUNDLE_BYTES:
        raise InvalidCABundle(f"bundle is larger than {MAX_BUNDLE_BYTES // 1024} KB")
    count = pem.count(_PEM_BEGIN)
    if count == 0:
        raise InvalidCABundle("no PEM certificate found")
    if count > MAX_BUNDLE_CERTS:
        raise InvalidCABundle(f"bundle holds {count} certificates; at most {MAX_BUNDLE_CERTS}")
    try:
        certificates = tuple(x509.load_pem_x509_certificates(pem.encode()))
    except ValueError as exc:
        raise InvalidCABundle(f"PEM does not parse: {exc}") from exc
    moment = now or dt.datetime.now(dt.UTC)
    for index, cert in enumerate(certificates):
        subject = cert.subject.rfc4514_string() or f"certificate #{index + 1}"
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise InvalidCABundle(f"{subject} is not a CA certificate (basicConstraints CA:true)")
        if cert.not_valid_after_utc <= moment:
            raise InvalidCABundle(f"{subject} expired on {cert.not_valid_after_utc.isoformat()}")
        if cert.not_valid_before_utc > moment:
            raise InvalidCABundle(f"{subject} is not valid before {cert.not_valid_before_utc}")
        algorithm = cert.signature_hash_algorithm
        if not isinstance(algorithm, _STRONG_HASHES):
            name = algorithm.name if algorithm else "unknown"
            raise InvalidCABundle(f"{subject} is signed with {name}; SHA-256 or stronger required")
    return CABundle(
        pem=pem,
        certificates=certificates,
        fingerprint=hashlib.sha256(pem.encode()).hexdigest(),
    )


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    public_key = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(
                cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm
            )
        else:
            return False
    except InvalidSignature:
        return False
    return True


def client_certificate_accepted(
    leaf_pem: bytes, bundle: CABundle, *, now: dt.datetime | None = None
) -> bool:
    """True when the leaf is currently valid, is not a CA and was issued by a CA of ``bundle``.

    The TLS layer already verified the chain against the union of every namespace's bundle;
    this re-check binds the certificate to one namespace's bundle.
    """
    try:
        leaf = x509.load_pem_x509_certificate(leaf_pem)
    except ValueError:
        return False
    moment = now or dt.datetime.now(dt.UTC)
    if not leaf.not_valid_before_utc <= moment < leaf.not_valid_after_utc:
        return False
    try:
        if leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        pass
    return any(
        ca.not_valid_before_utc <= moment < ca.not_valid_after_utc and _signed_by(leaf, ca)
        for ca in bundle.certificates
    )
