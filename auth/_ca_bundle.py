"""Validation of tenant CA bundles and per-namespace client-certificate checks.

A tenant's bundle is canonicalised before anything else sees it: only ``CERTIFICATE`` PEM
blocks with no RFC 1421 headers, each re-encoded from the parsed certificate, duplicates
dropped. Whatever bytes a tenant uploads, what is stored, published and loaded is exactly the
DER of certificates that passed every check below.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

MAX_BUNDLE_BYTES = 32 * 1024
MAX_BUNDLE_CERTS = 16
# A CA valid for longer than this is refused: no real CA needs it, and it outlives any review.
MAX_CA_VALIDITY = dt.timedelta(days=25 * 366)
MIN_RSA_BITS = 2048
# Larger RSA keys only make every handshake of the namespace slower.
MAX_RSA_BITS = 8192
_EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)
_STRONG_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
# One PEM block: label, then the body up to the matching END line (RFC 7468).
_BLOCK = re.compile(
    r"-----BEGIN (?P<label>[^-\r\n]*)-----\r?\n(?P<body>.*?)-----END (?P=label)-----", re.DOTALL
)
_BASE64_LINE = re.compile(r"[A-Za-z0-9+/=]*")


class InvalidCABundle(ValueError):
    """The bundle is not an acceptable set of CA certificates; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CABundle:
    """A validated, canonical bundle of CA certificates that a namespace accepts.

    ``pem`` is the canonical encoding (each certificate re-encoded from its DER, in upload
    order, duplicates dropped); ``fingerprint`` is its SHA-256 and identifies the bundle.
    """

    pem: str
    certificates: tuple[x509.Certificate, ...]
    fingerprint: str


def _der_blocks(pem: str) -> list[bytes]:
    """The DER of every PEM block; anything but strict ``CERTIFICATE`` blocks is refused."""
    blocks: list[bytes] = []
    position = 0
    if "-----BEGIN " not in pem:
        return blocks
    for match in _BLOCK.finditer(pem):
        if pem[position : match.start()].strip():
            raise InvalidCABundle(
                "text outside PEM blocks is not allowed; upload only certificates"
            )
        position = match.end()
        label = match.group("label")
        if label != "CERTIFICATE":
            raise InvalidCABundle(
                f"PEM block of type {label!r} is not allowed; upload only CERTIFICATE blocks"
            )
        lines = [line.strip() for line in match.group("body").splitlines()]
        for line in lines:
            if not _BASE64_LINE.fullmatch(line):
                # RFC 1421 headers ("Proc-Type: 4,ENCRYPTED", "DEK-Info: ...") and anything
                # else that is not base64 make OpenSSL-based TLS stacks stop loading a bundle.
                raise InvalidCABundle(
                    f"certificate #{len(blocks) + 1} has PEM headers or non-base64 text "
                    f"({line[:40]!r}); upload plain CERTIFICATE blocks"
                )
        try:
            blocks.append(base64.b64decode("".join(lines), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise InvalidCABundle(f"certificate #{len(blocks) + 1} is not valid base64") from exc
    if pem[position:].strip():
        raise InvalidCABundle("text outside PEM blocks is not allowed; upload only certificates")
    return blocks


def _check_key(subject: str, cert: x509.Certificate) -> None:
    try:
        key = cert.public_key()
    except (ValueError, TypeError) as exc:
        raise InvalidCABundle(f"{subject} has a public key that cannot be read") from exc
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS:
            raise InvalidCABundle(
                f"{subject} has a {key.key_size}-bit RSA key; {MIN_RSA_BITS} to "
                f"{MAX_RSA_BITS} bits required"
            )
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _EC_CURVES):
            raise InvalidCABundle(
                f"{subject} uses curve {key.curve.name}; P-256, P-384 or P-521 required"
            )
    else:
        raise InvalidCABundle(f"{subject} has an unsupported key type; use RSA or ECDSA")


def _check_ca(index: int, cert: x509.Certificate, moment: dt.datetime) -> None:
    try:
        subject = cert.subject.rfc4514_string() or f"certificate #{index + 1}"
    except ValueError:
        subject = f"certificate #{index + 1}"
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    except ValueError as exc:
        raise InvalidCABundle(f"{subject} has malformed extensions") from exc
    if constraints is None or not constraints.ca:
        raise InvalidCABundle(f"{subject} is not a CA certificate (basicConstraints CA:true)")
    algorithm = cert.signature_hash_algorithm
    if not isinstance(algorithm, _STRONG_HASHES):
        name = algorithm.name if algorithm else "unknown"
        raise InvalidCABundle(f"{subject} is signed with {name}; SHA-256 or stronger required")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.key_cert_sign:
        raise InvalidCABundle(
            f"{subject} may not sign certificates (keyUsage keyCertSign is required for a CA)"
        )
    if cert.not_valid_after_utc <= moment:
        raise InvalidCABundle(f"{subject} expired on {cert.not_valid_after_utc.isoformat()}")
    if cert.not_valid_before_utc > moment:
        raise InvalidCABundle(f"{subject} is not valid before {cert.not_valid_before_utc}")
    if cert.not_valid_after_utc - cert.not_valid_before_utc > MAX_CA_VALIDITY:
        raise InvalidCABundle(f"{subject} is valid for more than 25 years; issue a shorter CA")
    _check_key(subject, cert)


def parse_ca_bundle(pem: str, *, now: dt.datetime | None = None) -> CABundle:
    """Parse, validate and canonicalise a PEM CA bundle.

    Only ``CERTIFICATE`` blocks without headers; every certificate must parse, be a CA
    (``basicConstraints CA:true`` and ``keyUsage keyCertSign``), be valid now for at most 25
    years, be signed with SHA-256 or stronger and hold an RSA 2048 to 8192 or ECDSA P-256/384/521
    key; at most 16 certificates and 32 KB.
    """
    if len(pem.encode(errors="replace")) > MAX_BUNDLE_BYTES:
        raise InvalidCABundle(f"bundle is larger than {MAX_BUNDLE_BYTES // 1024} KB")
    if not pem.isascii():
        raise InvalidCABundle("bundle holds non-ASCII characters; upload plain PEM certificates")
    ders = _der_blocks(pem)
    if not ders:
        raise InvalidCABundle("no PEM certificate found")
    if len(ders) > MAX_BUNDLE_CERTS:
        raise InvalidCABundle(f"bundle holds {len(ders)} certificates; at most {MAX_BUNDLE_CERTS}")
    moment = now or dt.datetime.now(dt.UTC)
    certificates: list[x509.Certificate] = []
    seen: set[bytes] = set()
    for index, der in enumerate(ders):
        try:
            cert = x509.load_der_x509_certificate(der)
            canonical = cert.public_bytes(serialization.Encoding.DER)
        except ValueError as exc:
            raise InvalidCABundle(
                f"certificate #{index + 1} does not parse as an X.509 certificate"
            ) from exc
        if canonical != der:
            raise InvalidCABundle(
                f"certificate #{index + 1} is not in canonical DER encoding; re-export it"
            )
        _check_ca(index, cert, moment)
        if canonical in seen:
            continue
        seen.add(canonical)
        certificates.append(cert)
    text = "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in certificates)
    return CABundle(
        pem=text,
        certificates=tuple(certificates),
        fingerprint=hashlib.sha256(text.encode()).hexdigest(),
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

    Only this namespace's CAs are candidates issuers, so a CA another tenant uploads (even one
    with the same subject and key identifiers) can never decide the outcome.
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
