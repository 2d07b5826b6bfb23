"""The parts of SCIM's filter and PATCH path grammar (RFC 7644 §3.4.2.2, §3.5.2) that
provisioning clients send: ``attr eq "value"`` filters (Okta, Entra ID look users up by
``userName`` or ``externalId`` and groups by ``displayName``) and paths such as ``name.givenName``
or ``members[value eq "id"]``."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from controlplane.scim.errors import InvalidFilter, InvalidPath

_FILTER = re.compile(r'\s*([A-Za-z][\w.:$-]*)\s+eq\s+("(?:[^"\\]|\\.)*"|true|false)\s*', re.I)
_PATH = re.compile(r"^([A-Za-z$][\w$-]*)(?:\[(.+)\])?(?:\.([A-Za-z$][\w$-]*))?$")
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@dataclass(frozen=True)
class Equals:
    """``attribute eq value``; ``attribute`` lowercased (SCIM names are case-insensitive)."""

    attribute: str
    value: str | bool


def parse_filter(text: str) -> Equals:
    match = _FILTER.fullmatch(text)
    if match is None:
        raise InvalidFilter(
            f"unsupported filter {text!r}: this server answers filters of the form "
            'attribute eq "value" (e.g. userName eq "ada@example.com")'
        )
    raw = match.group(2)
    value: str | bool = json.loads(raw.lower() if raw.lower() in ("true", "false") else raw)
    return Equals(_strip_urn(match.group(1)).lower(), value)


@dataclass(frozen=True)
class Path:
    """``attribute[value filter].sub_attribute``, names lowercased."""

    attribute: str
    value_filter: Equals | None
    sub_attribute: str | None


def _strip_urn(name: str) -> str:
    for urn in (CORE_USER, CORE_GROUP):
        if name.lower().startswith(urn.lower() + ":"):
            return name[len(urn) + 1 :]
    return name


def parse_path(text: str) -> Path:
    match = _PATH.fullmatch(_strip_urn(text.strip()))
    if match is None:
        raise InvalidPath(f"unsupported PATH {text!r}")
    attribute, selector, sub = match.groups()
    if "." in attribute:
        attribute, _, sub = attribute.partition(".")
    try:
        value_filter = parse_filter(selector) if selector else None
    except InvalidFilter:
        raise InvalidPath(f"unsupported value filter in path {text!r}") from None
    return Path(attribute.lower(), value_filter, sub.lower() if sub else None)
