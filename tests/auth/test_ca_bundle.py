"""Tenant CA bundles: which bundles are accepted, why others are refused, and which client
certificates a namespace's bundle accepts."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auth import (
    MAX_BUNDLE_BYTES,
    MAX_BUNDLE_CERTS,
    InvalidCABundle,
    KeyPair,
    client_certificate_accepted,
    generate_ca,
    generate_leaf,
    parse_ca_bundle,
)

SHA1_CA = Path(__file__).resolve().parent.parent / "fixtures" / "sha1-ca.pem"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _self_signed(
    common_name: str,
    key: PrivateKey,
    *,
    basic_constraints: x509.BasicConstraints | None,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if basic_constraints is not None:
        builder = builder.add_extension(basic_constraints, critical=True)
        if basic_constraints.ca:
            builder = builder.add_extension(CA_KEY_USAGE, critical=True)
    return builder.sign(key, hashes.SHA256())


def _valid_self_signed(
    common_name: str, key: PrivateKey, basic_constraints: x509.BasicConstraints | None
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return _self_signed(
        common_name,
        key,
        basic_constraints=basic_constraints,
        not_before=now - dt.timedelta(minutes=5),
        not_after=now + dt.timedelta(days=30),
    )


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _rsa_leaf(ca_cert: x509.Certificate, ca_key: rsa.RSAPrivateKey) -> bytes:
    """A client certificate issued by an RSA CA (``generate_leaf`` only signs with EC keys)."""
    now = dt.datetime.now(dt.UTC)
    key = _rsa_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("rsa-client"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def _intermediate_ca(issuer: KeyPair, common_name: str) -> bytes:
    """A CA:true certificate signed by ``issuer`` (not self-signed)."""
    issuer_key = serialization.load_pem_private_key(issuer.key_pem, password=None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def ca() -> KeyPair:
    return generate_ca("Tenant CA")


@pytest.fixture(scope="module")
def other_ca() -> KeyPair:
    return generate_ca("Other CA")


# --- parsing: accepted bundles -------------------------------------------------------------


def test_single_ca_bundle_is_accepted(ca: KeyPair) -> None:
    """A bundle of one generated CA parses into that one certificate, keeping the PEM text."""
    pem = ca.cert_pem.decode()

    bundle = parse_ca_bundle(pem)

    assert bundle.certificates == (ca.certificate,)
    assert bundle.pem == pem
    assert re.fullmatch(r"[0-9a-f]{64}", bundle.fingerprint)


def test_multi_ca_bundle_keeps_every_certificate_in_order(ca: KeyPair, other_ca: KeyPair) -> None:
    """A two-CA bundle yields both certificates, in the order they appear in the PEM."""
    bundle = parse_ca_bundle(ca.cert_pem.decode() + other_ca.cert_pem.decode())

    assert isinstance(bundle.certificates, tuple)
    assert bundle.certificates == (ca.certificate, other_ca.certificate)


def test_fingerprint_is_stable_and_identifies_the_bundle(ca: KeyPair, other_ca: KeyPair) -> None:
    """Parsing the same PEM twice gives the same fingerprint; a different bundle a different one."""
    single = ca.cert_pem.decode()
    double = single + other_ca.cert_pem.decode()

    assert parse_ca_bundle(single).fingerprint == parse_ca_bundle(single).fingerprint
    assert parse_ca_bundle(double).fingerprint == parse_ca_bundle(double).fingerprint
    assert parse_ca_bundle(single).fingerprint != parse_ca_bundle(double).fingerprint


def test_rsa_ca_bundle_is_accepted() -> None:
    """An RSA CA signed with SHA-256 is as acceptable as an EC one."""
    key = _rsa_key()
    cert = _valid_self_signed("RSA CA", key, x509.BasicConstraints(ca=True, path_length=None))

    assert parse_ca_bundle(_pem(cert)).certificates == (cert,)


def test_bundle_of_exactly_the_maximum_certificates_is_accepted() -> None:
    """Sixteen CAs is still within the limit."""
    pem = "".join(generate_ca(f"CA {i}").cert_pem.decode() for i in range(MAX_BUNDLE_CERTS))

    assert len(parse_ca_bundle(pem).certificates) == MAX_BUNDLE_CERTS


def test_bundle_of_exactly_the_maximum_size_is_accepted(ca: KeyPair) -> None:
    """A bundle padded (with text outside the PEM block) to exactly 32 KB is still accepted."""
    pem = ca.cert_pem.decode()
    pem += "\n" * (MAX_BUNDLE_BYTES - len(pem.encode()))
    assert len(pem.encode()) == MAX_BUNDLE_BYTES

    assert parse_ca_bundle(pem).certificates == (ca.certificate,)


# --- parsing: refusals ---------------------------------------------------------------------


def test_text_without_pem_block_is_refused() -> None:
    """Text holding no PEM certificate is refused as such."""
    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle("this is not a certificate")

    assert refused.value.reason == "no PEM certificate found"


def test_empty_bundle_is_refused() -> None:
    """An empty string is refused as holding no certificate."""
    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle("")

    assert refused.value.reason == "no PEM certificate found"


def test_garbage_pem_body_is_refused() -> None:
    """A PEM block whose body is not a certificate is refused as not parsing."""
    pem = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"

    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(pem)

    assert refused.value.reason == "certificate #1 does not parse as an X.509 certificate"
    assert str(refused.value) == refused.value.reason


def test_leaf_certificate_is_refused_as_not_a_ca(ca: KeyPair) -> None:
    """A client leaf (CA:false) in the bundle is refused, naming its subject."""
    leaf = generate_leaf(ca, "alice")

    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(leaf.cert_pem.decode())

    assert "CN=alice" in refused.value.reason
    assert "not a CA certificate" in refused.value.reason


def test_ca_without_basic_constraints_is_refused() -> None:
    """A self-signed certificate without basicConstraints is not a CA."""
    cert = _valid_self_signed("No Constraints", ec.generate_private_key(ec.SECP256R1()), None)

    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(_pem(cert))

    assert "CN=No Constraints" in refused.value.reason
    assert "not a CA certificate" in refused.value.reason


def test_bad_certificate_after_a_good_one_is_refused_by_name(ca: KeyPair) -> None:
    """One bad certificate spoils the bundle, and the reason names that certificate."""
    leaf = generate_leaf(ca, "bob")

    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(ca.cert_pem.decode() + leaf.cert_pem.decode())

    assert refused.value.reason.startswith("CN=bob is not a CA certificate")


def test_expired_ca_is_refused() -> None:
    """A CA whose validity ended yesterday is refused as expired."""
    now = dt.datetime.now(dt.UTC)
    cert = _self_signed(
        "Expired CA",
        ec.generate_private_key(ec.SECP256R1()),
        basic_constraints=x509.BasicConstraints(ca=True, path_length=None),
        not_before=now - dt.timedelta(days=400),
        not_after=now - dt.timedelta(days=1),
    )

    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(_pem(cert))

    assert refused.value.reason.startswith("CN=Expired CA expired on ")
    assert cert.not_valid_after_utc.isoformat() in refused.value.reason


def test_ca_is_refused_once_now_passes_its_expiry(ca: KeyPair) -> None:
    """The same CA is accepted before its expiry and refused at it (``now`` is honoured)."""
    not_after = ca.certificate.not_valid_after_utc

    parse_ca_bundle(ca.cert_pem.decode(), now=not_after - dt.timedelta(seconds=1))
    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(ca.cert_pem.decode(), now=not_after)

    assert "expired on" in refused.value.reason


def test_not_yet_valid_ca_is_refused(ca: KeyPair) -> None:
    """A CA checked before its notBefore is refused as not yet valid."""
    not_before = ca.certificate.not_valid_before_utc

    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(ca.cert_pem.decode(), now=not_before - dt.timedelta(seconds=1))

    assert refused.value.reason == f"CN=Tenant CA is not valid before {not_before}"


def test_sha1_signed_ca_is_refused() -> None:
    """A CA signed with SHA-1 is refused, naming the algorithm and what is required."""
    pem = SHA1_CA.read_text()
    cert = x509.load_pem_x509_certificate(pem.encode())
    # Check inside the fixture's validity so only the signature hash can be the reason.
    inside_validity = cert.not_valid_before_utc + dt.timedelta(days=1)

    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(pem, now=inside_validity)

    assert refused.value.reason == (
        "CN=SHA-1 test CA is signed with sha1; SHA-256 or stronger required"
    )


def test_more_than_sixteen_certificates_are_refused() -> None:
    """Seventeen CAs exceed the per-bundle limit, even though each is valid."""
    pem = "".join(generate_ca(f"CA {i}").cert_pem.decode() for i in range(MAX_BUNDLE_CERTS + 1))
    assert len(pem.encode()) <= MAX_BUNDLE_BYTES

    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(pem)

    assert refused.value.reason == "bundle holds 17 certificates; at most 16"


def test_bundle_over_32_kb_is_refused(ca: KeyPair) -> None:
    """One byte over 32 KB is refused before any parsing, even around a valid CA."""
    pem = ca.cert_pem.decode()
    pem += "\n" * (MAX_BUNDLE_BYTES + 1 - len(pem.encode()))

    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(pem)

    assert refused.value.reason == "bundle is larger than 32 KB"


# --- client certificate acceptance ---------------------------------------------------------


def test_leaf_issued_by_the_bundle_ca_is_accepted(ca: KeyPair) -> None:
    """A current client certificate from the namespace's CA is accepted."""
    bundle = parse_ca_bundle(ca.cert_pem.decode())

    assert client_certificate_accepted(generate_leaf(ca, "worker").cert_pem, bundle)


def test_leaf_from_another_ca_is_refused(ca: KeyPair, other_ca: KeyPair) -> None:
    """A valid client certificate from a CA outside the bundle is refused."""
    bundle = parse_ca_bundle(ca.cert_pem.decode())

    assert not client_certificate_accepted(generate_leaf(other_ca, "intruder").cert_pem, bundle)


def test_leaf_from_a_ca_impersonating_the_bundle_ca_name_is_refused(ca: KeyPair) -> None:
    """A CA with the same subject name but a different key cannot issue accepted leaves."""
    impostor = generate_ca("Tenant CA")
    assert impostor.certificate.subject == ca.certificate.subject
    bundle = parse_ca_bundle(ca.cert_pem.decode())

    assert not client_certificate_accepted(generate_leaf(impostor, "intruder").cert_pem, bundle)


def test_expired_leaf_is_refused(ca: KeyPair) -> None:
    """A leaf from the bundle's CA is accepted before its expiry and refused after it."""
    bundle = parse_ca_bundle(ca.cert_pem.decode())
    leaf = generate_leaf(ca, "worker", valid_days=1)
    not_after = leaf.certificate.not_valid_after_utc

    assert client_certificate_accepted(leaf.cert_pem, bundle, now=not_after - dt.timedelta(days=1))
    assert not client_certificate_accepted(leaf.cert_pem, bundle, now=not_after)


def test_leaf_already_expired_is_refused_now(ca: KeyPair) -> None:
    """A leaf issued with zero days of validity is refused at the current time."""
    bundle = parse_ca_bundle(ca.cert_pem.decode())
    leaf = generate_leaf(ca, "worker", valid_days=0)

    assert not client_certificate_accepted(leaf.cert_pem, bundle)


def test_ca_certificate_presented_as_leaf_is_refused(ca: KeyPair) -> None:
    """The bundle's own (self-signed) CA certificate is not a client certificate."""
    bundle = parse_ca_bundle(ca.cert_pem.decode())

    assert not client_certificate_accepted(ca.cert_pem, bundle)


def test_sub_ca_presented_as_leaf_is_refused(ca: KeyPair) -> None:
    """A CA:true certificate signed by the bundle's CA is refused as a client certificate."""
    bundle = parse_ca_bundle(ca.cert_pem.decode())

    assert not client_certificate_accepted(_intermediate_ca(ca, "Sub CA"), bundle)


def test_leaf_signed_by_either_ca_of_a_two_ca_bundle_is_accepted(
    ca: KeyPair, other_ca: KeyPair
) -> None:
    """In a two-CA bundle (e.g. during rotation) leaves from both CAs are accepted."""
    bundle = parse_ca_bundle(ca.cert_pem.decode() + other_ca.cert_pem.decode())

    assert client_certificate_accepted(generate_leaf(ca, "old").cert_pem, bundle)
    assert client_certificate_accepted(generate_leaf(other_ca, "new").cert_pem, bundle)
    assert not client_certificate_accepted(
        generate_leaf(generate_ca("Third CA"), "x").cert_pem, bundle
    )


def test_leaf_of_rsa_ca_is_accepted_and_other_leaves_refused() -> None:
    """An RSA CA's leaf is accepted by its bundle; a leaf of another RSA CA is refused."""
    ca_key, stranger_key = _rsa_key(), _rsa_key()
    constraints = x509.BasicConstraints(ca=True, path_length=None)
    rsa_ca = _valid_self_signed("RSA CA", ca_key, constraints)
    stranger = _valid_self_signed("RSA CA", stranger_key, constraints)
    bundle = parse_ca_bundle(_pem(rsa_ca))

    assert client_certificate_accepted(_rsa_leaf(rsa_ca, ca_key), bundle)
    assert not client_certificate_accepted(_rsa_leaf(stranger, stranger_key), bundle)


def test_leaf_that_is_not_pem_is_refused(ca: KeyPair) -> None:
    """Bytes that are not a PEM certificate are refused rather than raising."""
    bundle = parse_ca_bundle(ca.cert_pem.decode())

    assert not client_certificate_accepted(b"not a certificate", bundle)


# --- canonicalisation: what a tenant uploads never reaches a TLS stack as it was sent --------


def _with_rfc1421_headers(pem: str) -> str:
    """The same certificate re-emitted with RFC 1421 headers, as in the reported attack."""
    lines = pem.strip().splitlines()
    return (
        "\n".join(
            [
                lines[0],
                "Proc-Type: 4,ENCRYPTED",
                "DEK-Info: AES-128-CBC,00000000000000000000000000000000",
                "",
                *lines[1:],
            ]
        )
        + "\n"
    )


def test_pem_headers_are_refused(ca: KeyPair) -> None:
    """A CERTIFICATE block carrying Proc-Type/DEK-Info headers parses in `cryptography` but
    stops BoringSSL loading a bundle: it is refused, naming the header."""
    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(_with_rfc1421_headers(ca.cert_pem.decode()))

    assert refused.value.reason == (
        "certificate #1 has PEM headers or non-base64 text ('Proc-Type: 4,ENCRYPTED'); "
        "upload plain CERTIFICATE blocks"
    )


@pytest.mark.parametrize("label", ["PRIVATE KEY", "X509 CRL", "TRUSTED CERTIFICATE"])
def test_other_pem_types_are_refused(ca: KeyPair, label: str) -> None:
    """Only CERTIFICATE blocks are accepted; any other PEM type in the bundle is refused."""
    body = ca.cert_pem.decode().replace("CERTIFICATE", label)
    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(ca.cert_pem.decode() + body)

    assert refused.value.reason == (
        f"PEM block of type {label!r} is not allowed; upload only CERTIFICATE blocks"
    )


def test_text_between_blocks_is_refused(ca: KeyPair, other_ca: KeyPair) -> None:
    """Explanatory text between certificates is refused rather than silently carried."""
    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(ca.cert_pem.decode() + "comment\n" + other_ca.cert_pem.decode())

    assert (
        refused.value.reason == "text outside PEM blocks is not allowed; upload only certificates"
    )


def test_bundle_is_re_encoded_from_the_parsed_certificates(ca: KeyPair, other_ca: KeyPair) -> None:
    """Line endings, wrapping, surrounding blank lines and a repeated certificate do not change
    what is stored: the canonical PEM is each distinct certificate's own encoding."""
    canonical = ca.cert_pem.decode() + other_ca.cert_pem.decode()
    body = "".join(ca.cert_pem.decode().splitlines()[1:-1])
    rewrapped = (
        "-----BEGIN CERTIFICATE-----\r\n"
        + "\r\n".join(body[i : i + 40] for i in range(0, len(body), 40))
        + "\r\n-----END CERTIFICATE-----\r\n"
    )
    messy = "\n\n" + rewrapped + "\n" + other_ca.cert_pem.decode() + ca.cert_pem.decode() + "\n"

    bundle = parse_ca_bundle(messy)

    assert bundle.pem == canonical
    assert bundle.fingerprint == parse_ca_bundle(canonical).fingerprint
    assert len(bundle.certificates) == 2


def test_ca_without_key_cert_sign_is_refused() -> None:
    """basicConstraints CA:true alone is not enough: keyUsage must allow keyCertSign."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("No usage CA"))
        .issuer_name(_name("No usage CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(_pem(cert))

    assert refused.value.reason == (
        "CN=No usage CA may not sign certificates (keyUsage keyCertSign is required for a CA)"
    )


def test_weak_rsa_key_is_refused() -> None:
    """An RSA CA key below 2048 bits is refused with its size."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key is the point
    cert = _valid_self_signed("Weak CA", key, x509.BasicConstraints(ca=True, path_length=0))
    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(_pem(cert))

    assert refused.value.reason == "CN=Weak CA has a 1024-bit RSA key; 2048 to 8192 bits required"


def test_ca_valid_for_more_than_25_years_is_refused() -> None:
    """A CA whose validity spans more than 25 years is refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = _self_signed(
        "Forever CA",
        key,
        basic_constraints=x509.BasicConstraints(ca=True, path_length=0),
        not_before=now - dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30 * 366),
    )
    with pytest.raises(InvalidCABundle) as refused:
        parse_ca_bundle(_pem(cert))

    assert (
        refused.value.reason == "CN=Forever CA is valid for more than 25 years; issue a shorter CA"
    )


def test_non_ascii_bundle_is_refused(ca: KeyPair) -> None:
    """Non-ASCII text (bidi overrides, lone surrogates) anywhere in a bundle is refused."""
    for extra in ("\u202e", "\ud800", "\x00"):
        with pytest.raises(InvalidCABundle):
            parse_ca_bundle(ca.cert_pem.decode() + extra)
