"""Generated CAs and leaves carry the extensions TLS peers check, and work in a real handshake."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from auth import KeyPair, generate_ca, generate_leaf

ExtensionT = TypeVar("ExtensionT", bound=x509.ExtensionType)


@pytest.fixture(scope="module")
def ca() -> KeyPair:
    return generate_ca("Stratus Test CA")


@pytest.fixture(scope="module")
def client(ca: KeyPair) -> KeyPair:
    return generate_leaf(ca, "worker-1")


@pytest.fixture(scope="module")
def server(ca: KeyPair) -> KeyPair:
    return generate_leaf(ca, "gateway", server_sans=["localhost", "127.0.0.1"])


def _ext(cert: x509.Certificate, kind: type[ExtensionT]) -> x509.Extension[ExtensionT]:
    return cert.extensions.get_extension_for_class(kind)


def _private_key_matches(pair: KeyPair) -> bool:
    key = serialization.load_pem_private_key(pair.key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.public_key() == pair.certificate.public_key()


def test_ca_is_a_critical_ca_true_self_signed_certificate(ca: KeyPair) -> None:
    """The CA has critical basicConstraints CA:true (path length 0) and signs itself."""
    cert = ca.certificate
    constraints = _ext(cert, x509.BasicConstraints)

    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    assert cert.issuer == cert.subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Stratus Test CA"
    cert.verify_directly_issued_by(cert)


def test_ca_may_sign_certificates(ca: KeyPair) -> None:
    """The CA's critical keyUsage allows keyCertSign (and crlSign)."""
    usage = _ext(ca.certificate, x509.KeyUsage)

    assert usage.critical
    assert usage.value.key_cert_sign
    assert usage.value.crl_sign


def test_ca_validity_follows_valid_days() -> None:
    """A CA generated for 30 days is valid now and for about 30 days."""
    cert = generate_ca("Short CA", valid_days=30).certificate
    now = dt.datetime.now(dt.UTC)

    assert cert.not_valid_before_utc <= now
    lifetime = cert.not_valid_after_utc - now
    assert dt.timedelta(days=29) < lifetime <= dt.timedelta(days=30)


def test_key_pem_is_the_certificate_private_key(ca: KeyPair, client: KeyPair) -> None:
    """Each pair's PEM private key belongs to its certificate."""
    assert _private_key_matches(ca)
    assert _private_key_matches(client)


def test_client_leaf_is_a_client_auth_non_ca_issued_by_the_ca(ca: KeyPair, client: KeyPair) -> None:
    """A leaf without SANs is a CA:false client certificate issued and signed by the CA."""
    cert = client.certificate

    assert _ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    assert _ext(cert, x509.BasicConstraints).value.ca is False
    assert cert.issuer == ca.certificate.subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "worker-1"
    cert.verify_directly_issued_by(ca.certificate)
    with pytest.raises(x509.ExtensionNotFound):
        _ext(cert, x509.SubjectAlternativeName)


def test_leaf_never_outlives_its_ca() -> None:
    """A leaf asked for a year from a 30-day CA expires with the CA, not after it."""
    short_ca = generate_ca("Short CA", valid_days=30)
    leaf = generate_leaf(short_ca, "worker", valid_days=365).certificate

    assert leaf.not_valid_after_utc <= short_ca.certificate.not_valid_after_utc


def test_server_leaf_has_dns_and_ip_sans_and_server_auth(server: KeyPair) -> None:
    """server_sans become a DNS SAN and an IP SAN, and the leaf is for serverAuth only."""
    cert = server.certificate
    sans = _ext(cert, x509.SubjectAlternativeName).value

    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert _ext(cert, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert _ext(cert, x509.BasicConstraints).value.ca is False


def test_leaf_from_ca_without_ec_key_is_refused() -> None:
    """generate_leaf refuses a CA whose key is not EC, with a TypeError saying so."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_ca = generate_ca("EC CA")
    rsa_pair = KeyPair(
        cert_pem=ec_ca.cert_pem,
        key_pem=rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )

    with pytest.raises(TypeError, match="CA key must be an EC private key"):
        generate_leaf(rsa_pair, "worker")


def _handshake(client_ctx: ssl.SSLContext, server_ctx: ssl.SSLContext, hostname: str) -> None:
    """Run a TLS handshake in memory (real OpenSSL, no sockets); raise on failure."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client_conn = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server_conn = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client_done = server_done = False
    for _ in range(20):
        if not client_done:
            try:
                client_conn.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not server_done:
            try:
                server_conn.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
        if client_done and server_done:
            # TLS 1.3 checks the client certificate after the client finishes: exchange data.
            client_conn.write(b"ping")
            s_in.write(c_out.read())
            assert server_conn.read(4) == b"ping"
            return
    raise AssertionError("handshake did not complete")


def _contexts(
    tmp_path: Path, ca: KeyPair, server: KeyPair, client: KeyPair
) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    for name, data in [
        ("ca.pem", ca.cert_pem),
        ("server.pem", server.cert_pem),
        ("server.key", server.key_pem),
        ("client.pem", client.cert_pem),
        ("client.key", client.key_pem),
    ]:
        (tmp_path / name).write_bytes(data)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server_ctx.load_verify_locations(tmp_path / "ca.pem")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    client_ctx.load_verify_locations(tmp_path / "ca.pem")
    client_ctx.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    return client_ctx, server_ctx


@pytest.mark.parametrize("hostname", ["localhost", "127.0.0.1"])
def test_mutual_tls_handshake_succeeds_with_generated_certificates(
    tmp_path: Path, ca: KeyPair, server: KeyPair, client: KeyPair, hostname: str
) -> None:
    """OpenSSL accepts the server leaf for both its SANs and the client leaf for clientAuth."""
    client_ctx, server_ctx = _contexts(tmp_path, ca, server, client)

    _handshake(client_ctx, server_ctx, hostname)


def test_server_leaf_is_refused_for_a_name_not_in_its_sans(
    tmp_path: Path, ca: KeyPair, server: KeyPair, client: KeyPair
) -> None:
    """A client connecting as another hostname refuses the server leaf (hostname mismatch)."""
    client_ctx, server_ctx = _contexts(tmp_path, ca, server, client)

    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        _handshake(client_ctx, server_ctx, "gateway.example")


def test_client_leaf_cannot_serve_tls(tmp_path: Path, ca: KeyPair, client: KeyPair) -> None:
    """A client leaf used as a server certificate is refused by its purpose (EKU clientAuth)."""
    client_ctx, server_ctx = _contexts(tmp_path, ca, client, client)
    # Hostname is not the point here: only the EKU may make the certificate unacceptable.
    client_ctx.check_hostname = False

    with pytest.raises(ssl.SSLCertVerificationError, match="unsuitable certificate purpose"):
        _handshake(client_ctx, server_ctx, "localhost")
