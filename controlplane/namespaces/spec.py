"""The governance parts of a namespace's spec: tags, custom search attributes, the codec server
and the endpoints shown for it. Pure validation (every refusal is an ``InvalidField`` naming
the field and what to fix); the service stores what these return."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from controlplane.config import ApiSettings
from controlplane.kit.errors import InvalidField
from controlplane.models.namespace import NamespaceView
from controlplane.states import SearchAttributeType

# Tags, as Temporal Cloud restricts them: lowercase keys and values of letters, digits, '-',
# '_' and '.', starting and ending with a letter or digit; keys 1-63 characters, values 0-63.
TAG_KEY_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?$")
TAG_VALUE_RE = re.compile(r"^(?:[a-z0-9](?:[a-z0-9_.-]{0,61}[a-z0-9])?)?$")

# Temporal's rule for a search attribute name (letters, digits and '_', starting with a
# letter); at most 64 characters.
SEARCH_ATTRIBUTE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
# Names Temporal keeps for itself (compared case-insensitively), besides any starting with
# "Temporal" and the SQL visibility store's column names (Keyword01, Int02...).
RESERVED_SEARCH_ATTRIBUTES = frozenset(
    name.lower()
    for name in (
        "BatcherNamespace",
        "BatcherUser",
        "BinaryChecksums",
        "BuildIds",
        "CloseTime",
        "ExecutionDuration",
        "ExecutionStatus",
        "ExecutionTime",
        "HistoryLength",
        "HistorySizeBytes",
        "NamespaceId",
        "ParentRunId",
        "ParentWorkflowId",
        "RootRunId",
        "RootWorkflowId",
        "RunId",
        "StartTime",
        "StateTransitionCount",
        "TaskQueue",
        "WorkflowId",
        "WorkflowType",
    )
)
_STORE_COLUMN_RE = re.compile(r"^(bool|datetime|double|int|keyword|keywordlist|text)\d+$")
# How many of each type a namespace may have: the columns Temporal's SQL visibility store has
# per type (what a cell's default store, SQLite or PostgreSQL, can hold).
MAX_SEARCH_ATTRIBUTES_BY_TYPE: Mapping[SearchAttributeType, int] = {
    SearchAttributeType.BOOL: 3,
    SearchAttributeType.DATETIME: 3,
    SearchAttributeType.DOUBLE: 3,
    SearchAttributeType.INT: 3,
    SearchAttributeType.KEYWORD: 10,
    SearchAttributeType.KEYWORD_LIST: 3,
    SearchAttributeType.TEXT: 3,
}
MAX_CODEC_ENDPOINT_LENGTH = 1024
LOOPBACK_HOSTS = frozenset({"localhost"})


def validate_tags(tags: Mapping[str, str], *, field: str = "tags") -> dict[str, str]:
    for key, value in tags.items():
        if not TAG_KEY_RE.fullmatch(key):
            raise InvalidField(
                f"tag key {key!r} must be 1-63 lowercase letters, digits, '-', '_' or '.', "
                "starting and ending with a letter or digit",
                field=field,
            )
        if not TAG_VALUE_RE.fullmatch(value):
            raise InvalidField(
                f"tag value {value!r} of {key!r} must be at most 63 lowercase letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit",
                field=field,
            )
    return dict(sorted(tags.items()))


def parse_tag_filter(raw: str) -> tuple[str, str]:
    """``key:value`` (the list filter's syntax)."""
    key, colon, value = raw.partition(":")
    if not colon:
        raise InvalidField("tag filter must be key:value", field="tag")
    validate_tags({key: value}, field="tag")
    return key, value


def validate_search_attribute_name(name: str, *, field: str = "search_attributes") -> None:
    if not SEARCH_ATTRIBUTE_NAME_RE.fullmatch(name):
        raise InvalidField(
            f"search attribute name {name!r} must be 1-64 letters, digits or '_', starting "
            "with a letter",
            field=field,
        )
    lowered = name.lower()
    if (
        lowered in RESERVED_SEARCH_ATTRIBUTES
        or lowered.startswith("temporal")
        or _STORE_COLUMN_RE.fullmatch(lowered)
    ):
        raise InvalidField(
            f"search attribute name {name!r} is reserved by Temporal; choose another name",
            field=field,
        )


def validate_search_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """``{name: type}`` with Temporal's names and types and at most the store's count per
    type; names are unique case-insensitively (Temporal's queries are)."""
    seen: set[str] = set()
    counts: dict[SearchAttributeType, int] = {}
    for name, raw_type in attributes.items():
        validate_search_attribute_name(name)
        if name.lower() in seen:
            raise InvalidField(
                f"search attribute {name!r} is given twice (names are case-insensitive)",
                field="search_attributes",
            )
        seen.add(name.lower())
        try:
            kind = SearchAttributeType(raw_type)
        except ValueError:
            allowed = ", ".join(kind.value for kind in SearchAttributeType)
            raise InvalidField(
                f"search attribute {name!r} has type {raw_type!r}; use one of {allowed}",
                field="search_attributes",
            ) from None
        counts[kind] = counts.get(kind, 0) + 1
    for kind, count in counts.items():
        if count > MAX_SEARCH_ATTRIBUTES_BY_TYPE[kind]:
            raise InvalidField(
                f"at most {MAX_SEARCH_ATTRIBUTES_BY_TYPE[kind]} search attributes of type "
                f"{kind.value} per namespace ({count} given)",
                field="search_attributes",
            )
    return dict(sorted(attributes.items()))


def plan_search_attributes(
    current: Mapping[str, str],
    desired: Mapping[str, str] | None,
    renames: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """Apply ``renames`` (old -> new, the type kept) to ``current``, then make ``desired`` (if
    given) the whole set. Returns the new set, the renames and the removed names. A type never
    changes under a name (Temporal cannot): remove it and add it under another name."""
    result = dict(current)
    for old, new in renames.items():
        validate_search_attribute_name(new, field="rename_search_attributes")
        if old not in result:
            raise InvalidField(
                f"cannot rename search attribute {old!r}: the namespace has none of that name",
                field="rename_search_attributes",
            )
        if new.lower() in {name.lower() for name in result if name != old}:
            raise InvalidField(
                f"cannot rename {old!r} to {new!r}: that name is taken",
                field="rename_search_attributes",
            )
        result[new] = result.pop(old)
    removed: list[str] = []
    if desired is not None:
        desired = validate_search_attributes(desired)
        for name, kind in desired.items():
            if name in result and result[name] != kind:
                raise InvalidField(
                    f"search attribute {name!r} is {result[name]}; a type cannot change: remove "
                    "it and add one under another name",
                    field="search_attributes",
                )
        removed = sorted(name for name in result if name not in desired)
        result = desired
    else:
        result = validate_search_attributes(result)
    return dict(sorted(result.items())), dict(renames), removed


def validate_codec_server(
    endpoint: str, pass_access_token: bool, include_cross_origin_credentials: bool
) -> dict[str, object]:
    """The codec server the console's browser calls (never Stratus: no server-side request).
    https, or http to this machine's loopback (a codec server run beside the browser)."""
    if len(endpoint) > MAX_CODEC_ENDPOINT_LENGTH:
        raise InvalidField(
            f"codec_server.endpoint must be at most {MAX_CODEC_ENDPOINT_LENGTH} characters",
            field="codec_server.endpoint",
        )
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        parts, port = None, None
    if (
        parts is None
        or parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or any(char.isspace() or char in "'\";,\\" for char in endpoint)
    ):
        raise InvalidField(
            "codec_server.endpoint must be an https URL with a host and no credentials, query "
            "or fragment (e.g. https://codec.example.com/acme)",
            field="codec_server.endpoint",
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise InvalidField(
            "codec_server.endpoint must use https; plain http is allowed only to localhost "
            "(127.0.0.1, ::1), where the browser reaches a codec server on its own machine",
            field="codec_server.endpoint",
        )
    del port
    return {
        "endpoint": endpoint.rstrip("/"),
        "pass_access_token": pass_access_token,
        "include_cross_origin_credentials": include_cross_origin_credentials,
    }


def _loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def codec_origin(codec_server: Mapping[str, object] | None) -> str | None:
    """The codec server's origin (scheme://host[:port]), for a page's CSP connect-src."""
    if not codec_server:
        return None
    parts = urlsplit(str(codec_server["endpoint"]))
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class NamespaceEndpoints:
    """Where a namespace is reached: the gateway for mTLS workers (with the TLS server name
    they must send), the gateway for API-key workers (None when the namespace takes no API
    keys or the endpoint is off) and its page in the console."""

    mtls_address: str
    server_name: str
    api_key_address: str | None
    console_url: str


def endpoints(settings: ApiSettings, namespace: NamespaceView) -> NamespaceEndpoints:
    api_key = (
        f"{settings.gateway_host}:{settings.gateway_api_key_port}"
        if settings.gateway_api_key_port and namespace.auth_method.accepts_api_keys
        else None
    )
    return NamespaceEndpoints(
        mtls_address=f"{settings.gateway_host}:{settings.gateway_port}",
        server_name=f"{namespace.id}.{settings.gateway_domain}",
        api_key_address=api_key,
        console_url=f"{settings.public_base_url}/namespaces/{namespace.id}",
    )
