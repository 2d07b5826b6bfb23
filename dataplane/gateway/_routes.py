"""Routing entries and where the gateway gets them from."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from auth import (
    AuthMethod,
    CABundle,
    CertificateFilter,
    InvalidCABundle,
    InvalidCertificateFilters,
    parse_ca_bundle,
    parse_certificate_filters,
)
from dataplane.cells import CellTls
from dataplane.gateway._limits import (
    DEFAULT_ACTIONS_PER_SECOND,
    DEFAULT_REQUESTS_PER_SECOND,
    Limits,
)
from dataplane.gateway._metrics import NamespaceLatency

logger = logging.getLogger(__name__)

# Namespace ids the control plane issues; only such ids are reported back as not served.
_REPORTABLE_ID = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
ROUTES_PATH = "/api/v1/internal/gateway-routes"
GATEWAYS_PATH = "/api/v1/internal/gateways"
# What a polling gateway tells the control plane: who it is, the table version it has applied
# (as an entity tag) and the namespaces of that version it could not serve.
GATEWAY_ID_HEADER = "X-Stratus-Gateway-Id"
APPLIED_VERSION_HEADER = "If-None-Match"
GATEWAY_REJECTED_HEADER = "X-Stratus-Gateway-Rejected"
# The RESOURCE_EXHAUSTED answers the gateway gave per namespace since it started:
# "<namespace id>=<count>,..." (cumulative: a lost poll loses nothing).
GATEWAY_THROTTLED_HEADER = "X-Stratus-Gateway-Throttled"
_MAX_THROTTLED_IN_HEADER = 200
# The latency of the calls it forwarded per routed namespace since it started (long polls
# aside): "<namespace id>=<total microseconds>:<count per bucket of
# NAMESPACE_LATENCY_BUCKETS, then +Inf, ':'-separated>,..." (cumulative, like the throttled;
# the busiest namespaces when not all fit).
GATEWAY_LATENCY_HEADER = "X-Stratus-Gateway-Latency"
# Kept well inside the control plane's header limits, beside the other headers.
_MAX_LATENCY_HEADER_CHARACTERS = 6000
# How often a gateway refreshes the counts it reports: a throttling storm costs the control
# plane one write per gateway per period, never one per refused request.
THROTTLED_REPORT_EVERY = 5.0
# More rejected namespaces than fit are reported as "*": the control plane then treats every
# namespace of the version as not served by that gateway (never as served).
_MAX_REJECTED_IN_HEADER = 64


def rejected_header(rejected: Mapping[str, str]) -> str:
    """The header value naming the namespaces a gateway could not serve."""
    if len(rejected) > _MAX_REJECTED_IN_HEADER:
        return "*"
    return ",".join(sorted(rejected))


def throttled_header(throttled: Mapping[str, int]) -> str:
    """The header value of the throttled counts (the largest first when there are too many)."""
    largest = sorted(throttled.items(), key=lambda item: (-item[1], item[0]))
    return ",".join(f"{ns}={count}" for ns, count in sorted(largest[:_MAX_THROTTLED_IN_HEADER]))


def latency_header(latency: Mapping[str, NamespaceLatency]) -> str:
    """The header value of the per-namespace latency counts: the namespaces with the most
    calls when they do not all fit in a few kilobytes (the others' counts are cumulative: they
    are reported in full once they fit)."""
    entries: list[str] = []
    size = 0
    for ns, series in sorted(latency.items(), key=lambda item: (-sum(item[1].counts), item[0])):
        entry = f"{ns}={round(series.total_seconds * 1_000_000)}:" + ":".join(
            map(str, series.counts)
        )
        if size + len(entry) + 1 > _MAX_LATENCY_HEADER_CHARACTERS:
            break
        entries.append(entry)
        size += len(entry) + 1
    return ",".join(sorted(entries))


@dataclass(frozen=True, slots=True)
class Route:
    """Where one namespace lives and which client certificates it accepts."""

    namespace_id: str
    cell_address: str
    accepted_client_ca: CABundle
    # The namespace's id on its cell (a UUID): task tokens carry it instead of the name.
    cell_namespace_id: str = ""
    # Which certificates of the accepted CAs may connect; empty admits all of them.
    certificate_filters: tuple[CertificateFilter, ...] = ()
    limits: Limits = field(default_factory=Limits)
    # Which gateway endpoint (mTLS, API key or both) may serve the namespace.
    auth_method: AuthMethod = AuthMethod.MTLS
    # The cell the namespace is placed on ("": a table from before cells were published, the
    # gateway reaches ``cell_address`` in plaintext as it always did).
    cell_id: str = ""
    # TLS to the cell's frontend (None: plaintext, local cells on loopback only).
    cell_tls: CellTls | None = None
    # Why no traffic may go to the cell ("": it may), for the operator log only: tenants are
    # told their namespace is temporarily unavailable, never which cell or why.
    cell_unavailable: str = ""
    # Why the namespace's account is suspended ("": it is not): admitted callers are refused
    # with PERMISSION_DENIED and this text.
    suspended: str = ""

    @property
    def upstream_key(self) -> tuple[str, str, CellTls | None]:
        """What identifies the gateway's channel to the route's cell: a change of address or
        of TLS material is a new channel."""
        return self.cell_id, self.cell_address, self.cell_tls

    @property
    def cell_name(self) -> str:
        """The cell as the operator log names it."""
        return self.cell_id or self.cell_address


class RouteEntry(BaseModel):
    """One namespace's routing entry as the control plane publishes it: the wire form of a
    :class:`Route` (the CA bundle and filters as sent, parsed by the gateway)."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    namespace_id: str
    cell_address: str
    accepted_client_ca: str = Field(description="PEM bundle of the accepted client CAs")
    # The cell the namespace is placed on (an id of RouteDocument.cells; "" for a document from
    # before cells were published: the gateway then reaches ``cell_address`` in plaintext).
    cell_id: str = ""
    # The namespace's id on its cell (a UUID): task tokens carry it instead of the name.
    cell_namespace_id: str = ""
    certificate_filters: list[dict[str, str]] = Field(
        default_factory=list, description="Empty admits every certificate of the accepted CAs"
    )
    auth_method: AuthMethod = AuthMethod.MTLS
    requests_per_second: PositiveInt = DEFAULT_REQUESTS_PER_SECOND
    actions_per_second: PositiveInt = DEFAULT_ACTIONS_PER_SECOND
    # Non-empty while the namespace's account is suspended: the refusal its callers get.
    suspended: str = Field("", max_length=600)


class CellTlsEntry(BaseModel):
    """How a gateway reaches a registered cell over TLS (wire form of ``dataplane.cells.CellTls``):
    the CA of the cell's frontend, the client certificate and key to present, the server name."""

    model_config = ConfigDict(frozen=True)

    ca_pem: str
    cert_pem: str
    key_pem: str = Field(repr=False)
    server_name: str = ""


class CellEntry(BaseModel):
    """One cell as gateways reach it: its frontend address, TLS (None: plaintext, local cells on
    loopback only) and whether the control plane currently sees it healthy."""

    model_config = ConfigDict(frozen=True)

    cell_id: str
    address: str
    tls: CellTlsEntry | None = None
    healthy: bool = True


class RouteDocument(BaseModel):
    """The route table as ``GET /api/v1/internal/gateway-routes`` serves it."""

    version: int
    routes: list[RouteEntry]
    # The cells the routes point at (by RouteEntry.cell_id).
    cells: list[CellEntry] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RouteTable:
    """An immutable snapshot of every routing entry, keyed by namespace id.

    ``version`` identifies the snapshot; the gateway applies a table only when it differs
    from the one it serves.
    """

    routes: Mapping[str, Route] = field(default_factory=lambda: MappingProxyType({}))
    version: int = 0
    # Namespaces the document named but the source could not route (reason by namespace id):
    # the gateway reports them with its other rejections, so none is ever called served.
    dropped: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(
        cls, routes: Iterable[Route], version: int, dropped: Mapping[str, str] | None = None
    ) -> RouteTable:
        by_namespace = {route.namespace_id: route for route in routes}
        return cls(
            routes=MappingProxyType(by_namespace),
            version=version,
            dropped=MappingProxyType(dict(dropped or {})),
        )


class RouteSource(Protocol):
    """Supplies route tables to the gateway, which polls it."""

    async def fetch(self) -> RouteTable | None:
        """The current table, or ``None`` when it has not changed since the last fetch."""
        ...

    def report(self, rejected: Mapping[str, str]) -> None:
        """What the gateway could not serve of the table it applied last (namespace id →
        reason), so the control plane never calls such a namespace ready."""
        ...

    def report_throttled(self, throttled: Mapping[str, int]) -> None:
        """The RESOURCE_EXHAUSTED answers per namespace since the gateway started."""
        ...

    def report_latency(self, latency: Mapping[str, NamespaceLatency]) -> None:
        """The latency of the calls per routed namespace since the gateway started."""
        ...


class StaticRouteSource:
    """Routes held in memory; ``set`` replaces them and bumps the version (tests, benchmarks)."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._versions = itertools.count(1)
        self._table = RouteTable.of(routes, next(self._versions))
        self.rejected: Mapping[str, str] = {}
        self.throttled: Mapping[str, int] = {}
        self.latency: Mapping[str, NamespaceLatency] = {}

    @property
    def table(self) -> RouteTable:
        return self._table

    def set(self, routes: Iterable[Route]) -> None:
        self._table = RouteTable.of(routes, next(self._versions))

    async def fetch(self) -> RouteTable | None:
        # Always the current table: several gateways may share one source, and each
        # gateway skips a table whose version it already serves.
        return self._table

    def report(self, rejected: Mapping[str, str]) -> None:
        self.rejected = dict(rejected)

    def report_throttled(self, throttled: Mapping[str, int]) -> None:
        self.throttled = dict(throttled)

    def report_latency(self, latency: Mapping[str, NamespaceLatency]) -> None:
        self.latency = dict(latency)


class HttpRouteSource:
    """Routes published by the control plane at ``GET /api/v1/internal/gateway-routes``.

    Conditional requests (``If-None-Match``) make an unchanged poll a cheap 304. Any failure
    keeps the last good table (logged as a warning): a control-plane outage must not stop
    worker traffic.

    Each poll names the gateway (``X-Stratus-Gateway-Id``), the version it has applied
    (``If-None-Match``) and the namespaces of that version it could not serve
    (``X-Stratus-Gateway-Rejected``): the control plane marks a namespace ACTIVE only once
    every registered gateway serves it with its CAs in force.
    """

    def __init__(
        self, api_url: str, api_key: str, *, gateway_id: str | None = None, timeout: float = 5.0
    ) -> None:
        self._url = api_url.rstrip("/") + ROUTES_PATH
        self._gateway_id = gateway_id
        headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        if gateway_id is not None:
            headers[GATEWAY_ID_HEADER] = gateway_id
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), headers=headers)
        self._version: int | None = None
        self._rejected_header = ""
        self._throttled_header = ""
        self._throttled_at = -THROTTLED_REPORT_EVERY
        self._latency_header = ""
        self._latency_at = -THROTTLED_REPORT_EVERY
        # Bundles rarely change; reuse parsed ones across versions.
        self._bundles: dict[str, CABundle] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def deregister(self) -> None:
        """Leave the set of gateways the control plane waits for (on a clean stop only: a
        crashed gateway stays registered and holds activations back until it is back)."""
        if self._gateway_id is None:
            return
        url = self._url.removesuffix(ROUTES_PATH) + GATEWAYS_PATH + "/" + self._gateway_id
        try:
            response = await self._client.delete(url)
            if response.status_code not in (204, 404):
                response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.warning("gateway %s not deregistered: %r", self._gateway_id, exc)

    async def wait_until_reachable(self, timeout: float) -> None:
        """Block until the control plane answers, so a starting gateway never serves with an
        empty table (it would refuse every tenant's handshake until its next poll)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                response = await self._client.get(self._url)
                response.raise_for_status()
                return
            except httpx.HTTPError as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise TimeoutError(f"route source {self._url} unreachable: {exc!r}") from exc
            await asyncio.sleep(0.2)

    def report(self, rejected: Mapping[str, str]) -> None:
        self._rejected_header = rejected_header(rejected)

    def report_throttled(self, throttled: Mapping[str, int]) -> None:
        now = time.monotonic()
        if now - self._throttled_at < THROTTLED_REPORT_EVERY:
            return
        self._throttled_at = now
        self._throttled_header = throttled_header(throttled)

    def report_latency(self, latency: Mapping[str, NamespaceLatency]) -> None:
        now = time.monotonic()
        if now - self._latency_at < THROTTLED_REPORT_EVERY:
            return
        self._latency_at = now
        self._latency_header = latency_header(latency)

    async def fetch(self) -> RouteTable | None:
        headers = {} if self._version is None else {APPLIED_VERSION_HEADER: f'"{self._version}"'}
        if self._rejected_header:
            headers[GATEWAY_REJECTED_HEADER] = self._rejected_header
        if self._throttled_header:
            headers[GATEWAY_THROTTLED_HEADER] = self._throttled_header
        if self._latency_header:
            headers[GATEWAY_LATENCY_HEADER] = self._latency_header
        try:
            response = await self._client.get(self._url, headers=headers)
            if response.status_code == httpx.codes.NOT_MODIFIED:
                return None
            response.raise_for_status()
            table = self._parse(response.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            logger.warning(
                "gateway routes not refreshed from %s, keeping the last ones: %r", self._url, exc
            )
            return None
        self._version = table.version
        return table

    def _parse(self, body: object) -> RouteTable:
        """The table of a route document. A document that is not one fails the fetch (the
        last table stays); an entry that does not validate, or whose CA bundle or filters do
        not parse, drops only its namespace (logged)."""
        if not isinstance(body, dict) or not isinstance(body.get("routes"), list):
            raise TypeError("route document is not a JSON object with a list of routes")
        version = body.get("version")
        if not isinstance(version, int):
            raise TypeError("route document version is not an integer")
        routes: list[Route] = []
        bundles: dict[str, CABundle] = {}
        dropped: dict[str, str] = {}
        cells = self._cells(body.get("cells"))
        for position, raw in enumerate(body["routes"]):
            try:
                entry = RouteEntry.model_validate(raw)
            except ValidationError as exc:
                named = raw.get("namespace_id") if isinstance(raw, dict) else None
                logger.warning(
                    "route entry %d (namespace %r) dropped from routing: %s",
                    position,
                    named,
                    exc,
                )
                if isinstance(named, str) and _REPORTABLE_ID.fullmatch(named):
                    dropped[named] = "its route entry is malformed"
                continue
            route = self._route(entry, dropped, cells)
            if route is not None:
                bundles[entry.accepted_client_ca] = route.accepted_client_ca
                routes.append(route)
        self._bundles = bundles
        return RouteTable.of(routes, version, dropped)

    def _cells(self, raw: object) -> dict[str, CellEntry]:
        """The document's cells by id. A cell entry that does not validate is left out (its
        namespaces then answer UNAVAILABLE, their cell being unknown), never guessed at."""
        cells: dict[str, CellEntry] = {}
        if raw is None:
            return cells
        if not isinstance(raw, list):
            raise TypeError("route document cells is not a list")
        for position, item in enumerate(raw):
            try:
                cell = CellEntry.model_validate(item)
            except ValidationError as exc:
                logger.warning("cell entry %d dropped from routing: %s", position, exc)
                continue
            cells[cell.cell_id] = cell
        return cells

    def _route(
        self, entry: RouteEntry, dropped: dict[str, str], cells: Mapping[str, CellEntry]
    ) -> Route | None:
        bundle = self._bundles.get(entry.accepted_client_ca)
        if bundle is None:
            try:
                bundle = parse_ca_bundle(entry.accepted_client_ca)
            except InvalidCABundle as exc:
                # Fail closed for this namespace only: its workers get NOT_FOUND until the
                # control plane publishes a valid bundle; other namespaces keep working.
                logger.warning(
                    "namespace %s dropped from routing: %s", entry.namespace_id, exc.reason
                )
                dropped[entry.namespace_id] = f"its client CA bundle is refused: {exc.reason}"
                return None
        try:
            filters = parse_certificate_filters(entry.certificate_filters)
        except InvalidCertificateFilters as exc:
            # Same as a bad bundle: refusing the namespace is safer than admitting
            # certificates its owner meant to exclude.
            logger.warning("namespace %s dropped from routing: %s", entry.namespace_id, exc.reason)
            dropped[entry.namespace_id] = f"its certificate filters are refused: {exc.reason}"
            return None
        address, tls, unavailable = entry.cell_address, None, ""
        if entry.cell_id:
            cell = cells.get(entry.cell_id)
            if cell is None:
                unavailable = "the route document does not describe the cell"
            else:
                address = cell.address
                tls = _cell_tls(cell.tls)
                if not cell.healthy:
                    unavailable = "the control plane reports the cell unhealthy"
        return Route(
            entry.namespace_id,
            address,
            bundle,
            entry.cell_namespace_id,
            filters,
            Limits(
                requests_per_second=entry.requests_per_second,
                actions_per_second=entry.actions_per_second,
            ),
            entry.auth_method,
            entry.cell_id,
            tls,
            unavailable,
            entry.suspended,
        )


def _cell_tls(entry: CellTlsEntry | None) -> CellTls | None:
    if entry is None:
        return None
    return CellTls(entry.ca_pem, entry.cert_pem, entry.key_pem, entry.server_name)
