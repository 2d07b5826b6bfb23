"""Certificate filters: which filter lists are accepted, why others are refused, and which
client certificates a list of filters lets through."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auth import (
    MAX_CERTIFICATE_FILTERS,
    CertificateFilter,
    InvalidCertificateFilters,
    certificate_matches_filters,
    parse_certificate_filters,
)


def _certificate(
    *,
    common_name: str | None = "worker-1.orders",
    organizations: tuple[str, ...] = ("Acme Corp",),
    units: tuple[str, ...] = ("Payments",),
    sans: tuple[x509.GeneralName, ...] = (),
) -> x509.Certificate:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes += [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, u) for u in units]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Issuer")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256())


CERT = _certificate(
    organizations=("Acme Corp", "Acme Holdings"),
    sans=(
        x509.DNSName("worker.orders.acme.com"),
        x509.UniformResourceIdentifier("spiffe://acme.com/orders/worker"),
        x509.RFC822Name("ops@acme.com"),
        x509.IPAddress(ipaddress.ip_address("10.1.2.3")),
    ),
)


def _matches(*filters: dict[str, object], cert: x509.Certificate = CERT) -> bool:
    return certificate_matches_filters(cert, parse_certificate_filters(list(filters)))


def test_no_filters_accept_every_certificate() -> None:
    assert certificate_matches_filters(CERT, ())
    assert certificate_matches_filters(_certificate(common_name=None, organizations=()), ())


@pytest.mark.parametrize(
    "spec",
    [
        {"common_name": "worker-1.orders"},
        {"common_name": "WORKER-1.Orders"},
        {"common_name": "worker-*"},
        {"common_name": "*.orders"},
        {"common_name": "*"},
        {"organization": "acme holdings"},
        {"organization": "Acme*"},
        {"organizational_unit": "payments"},
        {"subject_alternative_name": "*.acme.com"},
        {"subject_alternative_name": "spiffe://acme.com/orders/*"},
        {"subject_alternative_name": "OPS@acme.com"},
        {"subject_alternative_name": "10.1.2.3"},
        {"common_name": "worker-*", "organization": "acme corp", "organizational_unit": "Pay*"},
    ],
    ids=[
        "cn-exact",
        "cn-case",
        "cn-prefix",
        "cn-suffix",
        "cn-any",
        "second-organization",
        "org-prefix",
        "ou-case",
        "san-dns-suffix",
        "san-uri-prefix",
        "san-email-case",
        "san-ip",
        "all-fields",
    ],
)
def test_matching_filter_admits(spec: dict[str, object]) -> None:
    assert _matches(spec)


@pytest.mark.parametrize(
    "spec",
    [
        {"common_name": "worker-2.orders"},
        {"common_name": "worker"},
        {"common_name": "*.billing"},
        {"common_name": "billing-*"},
        {"organization": "Globex"},
        {"organizational_unit": "Payments*", "organization": "Globex"},
        {"subject_alternative_name": "*.globex.com"},
        {"subject_alternative_name": "10.1.2.4"},
        # Subject fields are not SANs, and SANs are not the CN.
        {"subject_alternative_name": "worker-1.orders"},
        {"common_name": "worker.orders.acme.com"},
    ],
    ids=[
        "cn-other",
        "cn-is-not-a-substring-match",
        "cn-other-suffix",
        "cn-other-prefix",
        "org-other",
        "one-field-of-two-fails",
        "san-other",
        "san-other-ip",
        "cn-is-not-a-san",
        "san-is-not-the-cn",
    ],
)
def test_non_matching_filter_refuses(spec: dict[str, object]) -> None:
    assert not _matches(spec)


def test_any_filter_of_several_is_enough() -> None:
    assert _matches({"common_name": "nobody"}, {"organization": "acme corp"})
    assert not _matches({"common_name": "nobody"}, {"organization": "nobody"})


def test_absent_fields_never_match() -> None:
    bare = _certificate(common_name=None, organizations=(), units=())
    for spec in (
        {"common_name": "*"},
        {"organization": "*"},
        {"organizational_unit": "*"},
        {"subject_alternative_name": "*"},
    ):
        assert not _matches(spec, cert=bare), spec


def test_parse_returns_frozen_filters_that_round_trip() -> None:
    raw: list[dict[str, object]] = [
        {"common_name": "worker-*", "organization": "Acme"},
        {"subject_alternative_name": "*.acme.com", "organizational_unit": None},
    ]
    parsed = parse_certificate_filters(raw)
    assert parsed == (
        CertificateFilter(common_name="worker-*", organization="Acme"),
        CertificateFilter(subject_alternative_name="*.acme.com"),
    )
    assert [f.as_dict() for f in parsed] == [
        {"common_name": "worker-*", "organization": "Acme"},
        {"subject_alternative_name": "*.acme.com"},
    ]
    assert parse_certificate_filters([f.as_dict() for f in parsed]) == parsed
    assert parse_certificate_filters([]) == ()
    with pytest.raises(AttributeError):
        parsed[0].common_name = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            [{"common_name": "w"}] * (MAX_CERTIFICATE_FILTERS + 1),
            "26 filters given; at most 25 are allowed",
        ),
        ([{}], "filter #1 sets no field"),
        ([{"common_name": None}], "filter #1 sets no field"),
        (
            [{"common_name": "ok"}, {"common_name": "ok", "serial": "1"}],
            "filter #2: unknown field serial",
        ),
        ([{"common_name": ""}], "filter #1: common_name must be 1-255 characters long"),
        ([{"organization": "a" * 256}], "filter #1: organization must be 1-255 characters long"),
        ([{"common_name": 7}], "filter #1: common_name must be a string"),
        ([{"common_name": "*a*"}], "filter #1: common_name '*a*' has 2 '*'"),
        ([{"common_name": "**"}], "filter #1: common_name '**' has 2 '*'"),
        (
            [{"subject_alternative_name": "a*.acme.com"}],
            "filter #1: subject_alternative_name 'a*.acme.com' may use '*' only as its first "
            "or last character",
        ),
        (["common_name=x"], "filter #1 is not an object"),
        ("common_name=x", "certificate filters must be a list of objects"),
    ],
    ids=[
        "26-filters",
        "empty-filter",
        "only-null-fields",
        "unknown-key",
        "empty-value",
        "value-over-255",
        "not-a-string",
        "two-wildcards",
        "double-star",
        "wildcard-in-the-middle",
        "filter-not-an-object",
        "not-a-list",
    ],
)
def test_refused_filters_say_why(raw: object, reason: str) -> None:
    with pytest.raises(InvalidCertificateFilters) as refused:
        parse_certificate_filters(raw)  # type: ignore[arg-type]
    assert refused.value.reason.startswith(reason), refused.value.reason
    assert isinstance(refused.value, ValueError)


def test_limits_are_inclusive() -> None:
    assert len(parse_certificate_filters([{"common_name": "w"}] * 25)) == 25
    assert parse_certificate_filters([{"common_name": "a" * 255}])[0].common_name == "a" * 255
