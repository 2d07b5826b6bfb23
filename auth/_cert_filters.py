"""Certificate filters: which client certificates of an accepted CA may use a namespace.

A namespace's CA bundle says *who issued* a client certificate; its filters narrow that down to
*which* certificates, by subject fields and subject alternative names (as Temporal Cloud's
certificate filters do). No filters means every certificate of the accepted CAs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

from cryptography import x509
from cryptography.x509.oid import NameOID

from auth._text import unsafe_character

MAX_CERTIFICATE_FILTERS = 25
MAX_FILTER_VALUE_LENGTH = 255
WILDCARD = "*"


class InvalidCertificateFilters(ValueError):
    """The filters are not acceptable; ``reason`` says why (and which filter)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CertificateFilter:
    """One filter: a certificate matches when *every* field that is set matches it.

    Values compare case-insensitively; a ``*`` as the first or last character matches any
    prefix or suffix (``*.acme.com``, ``worker-*``).
    """

    common_name: str | None = None
    organization: str | None = None
    organizational_unit: str | None = None
    subject_alternative_name: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The fields that are set, as stored and published (``parse`` reads it back)."""
        return {
            item.name: value
            for item in fields(self)
            if (value := getattr(self, item.name)) is not None
        }

    def matches(self, certificate: x509.Certificate) -> bool:
        subject_fields = (
            (self.common_name, NameOID.COMMON_NAME),
            (self.organization, NameOID.ORGANIZATION_NAME),
            (self.organizational_unit, NameOID.ORGANIZATIONAL_UNIT_NAME),
        )
        for pattern, oid in subject_fields:
            if pattern is not None and not _any_matches(pattern, _subject_values(certificate, oid)):
                return False
        return self.subject_alternative_name is None or _any_matches(
            self.subject_alternative_name, _san_values(certificate)
        )


FILTER_FIELDS = tuple(item.name for item in fields(CertificateFilter))


def _validate_value(position: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidCertificateFilters(f"{position}: {key} must be a string")
    if not 1 <= len(value) <= MAX_FILTER_VALUE_LENGTH:
        raise InvalidCertificateFilters(
            f"{position}: {key} must be 1-{MAX_FILTER_VALUE_LENGTH} characters long"
        )
    unsafe = unsafe_character(value)
    if unsafe is not None:
        raise InvalidCertificateFilters(f"{position}: {key} contains {unsafe}")
    wildcards = value.count(WILDCARD)
    if wildcards > 1:
        raise InvalidCertificateFilters(
            f"{position}: {key} {value!r} has {wildcards} '*'; at most one is allowed"
        )
    if wildcards == 1 and not (value.startswith(WILDCARD) or value.endswith(WILDCARD)):
        raise InvalidCertificateFilters(
            f"{position}: {key} {value!r} may use '*' only as its first or last character"
        )
    return value


def parse_certificate_filters(
    raw: Sequence[Mapping[str, object]],
) -> tuple[CertificateFilter, ...]:
    """Validate filters given as JSON objects (``[{"common_name": "worker-*"}, ...]``).

    At most 25 filters; each sets at least one of ``common_name``, ``organization``,
    ``organizational_unit``, ``subject_alternative_name`` and nothing else; each value is
    1-255 characters with at most one ``*``, as its first or last character, and no control,
    bidirectional-text or other invisible formatting characters.
    """
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise InvalidCertificateFilters("certificate filters must be a list of objects")
    if len(raw) > MAX_CERTIFICATE_FILTERS:
        raise InvalidCertificateFilters(
            f"{len(raw)} filters given; at most {MAX_CERTIFICATE_FILTERS} are allowed"
        )
    parsed: list[CertificateFilter] = []
    for index, entry in enumerate(raw):
        position = f"filter #{index + 1}"
        if not isinstance(entry, Mapping):
            raise InvalidCertificateFilters(f"{position} is not an object")
        unknown = sorted(str(key) for key in entry if key not in FILTER_FIELDS)
        if unknown:
            raise InvalidCertificateFilters(
                f"{position}: unknown field {', '.join(unknown)}; "
                f"allowed: {', '.join(FILTER_FIELDS)}"
            )
        values = {
            key: _validate_value(position, key, value)
            for key, value in entry.items()
            if value is not None
        }
        if not values:
            raise InvalidCertificateFilters(
                f"{position} sets no field; set at least one of {', '.join(FILTER_FIELDS)}"
            )
        parsed.append(CertificateFilter(**values))
    return tuple(parsed)


def certificate_matches_filters(
    certificate: x509.Certificate, filters: Iterable[CertificateFilter]
) -> bool:
    """True when there are no filters or when *any* filter matches the certificate."""
    filters = tuple(filters)
    return not filters or any(item.matches(certificate) for item in filters)


def _any_matches(pattern: str, values: Iterable[str]) -> bool:
    """Case-insensitive; a leading or trailing ``*`` matches any prefix or suffix."""
    pattern = pattern.casefold()
    for value in (value.casefold() for value in values):
        if pattern == WILDCARD:
            matched = bool(value)
        elif pattern.startswith(WILDCARD):
            matched = value.endswith(pattern[1:])
        elif pattern.endswith(WILDCARD):
            matched = value.startswith(pattern[:-1])
        else:
            matched = value == pattern
        if matched:
            return True
    return False


def _subject_values(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    return [
        attribute.value
        for attribute in certificate.subject.get_attributes_for_oid(oid)
        if isinstance(attribute.value, str)
    ]


def _san_values(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    values: list[str] = []
    values.extend(names.get_values_for_type(x509.DNSName))
    values.extend(names.get_values_for_type(x509.UniformResourceIdentifier))
    values.extend(names.get_values_for_type(x509.RFC822Name))
    values.extend(str(address) for address in names.get_values_for_type(x509.IPAddress))
    return values
