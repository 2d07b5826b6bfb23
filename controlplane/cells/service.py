"""Registered cells (operator only) and placement of new namespaces on cells.

Registration probes the cluster (``GetSystemInfo`` over the given TLS) and stores nothing when it
does not answer. Placement locks the chosen cell's row (an UPDATE: a row lock on PostgreSQL, the
write lock on SQLite) before counting its namespaces, so two creates never overfill a cell.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, InvalidCABundle, Principal, SecretBox, parse_ca_bundle
from controlplane.audit import service as audit
from controlplane.cells.repository import CellRepository
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import AlreadyExists, Conflict, InvalidField, NotFound, StratusError
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import Cell, Namespace
from controlplane.models.cell import key_binding
from controlplane.states import CellPlacement, CellProbeState, CellState
from dataplane.cells import CellProviderKind, CellTls, ProbeResult, probe

NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Local cells are named after their account (``cell-<account>``): a registered cell may not be.
LOCAL_PREFIX = "cell-"
_HOST_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


class InvalidCell(InvalidField):
    """A registration field an operator got wrong (a typo, a file of the wrong kind)."""

    status = 422
    slug = "invalid-cell"


class CellUnreachable(StratusError):
    """The cluster did not answer ``GetSystemInfo`` with the given address and TLS."""

    status = 422
    slug = "cell-unreachable"
    title = "The cell did not answer"

    def __init__(self, result: ProbeResult) -> None:
        super().__init__(f"the cell's frontend did not answer: {result.reason}", field="frontend")
        self.reason = result.category

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body = super().problem(instance)
        body["reason"] = self.reason
        return body


class NoCellCapacity(StratusError):
    """No cell can take the namespace under the placement policy."""

    status = 503
    slug = "no-cell-capacity"
    title = "No cell can take the namespace"


def _manage(principal: Principal) -> None:
    require(principal, Action.CELL_MANAGE, refusal="only the operator manages cells")


def validate_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise InvalidCell(
            "name must be 1-63 lowercase letters, digits and '-', starting and ending with a "
            "letter or digit",
            field="name",
        )
    if name.startswith(LOCAL_PREFIX):
        raise InvalidCell(f"names starting with {LOCAL_PREFIX!r} are local cells'", field="name")
    return name


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6), or InvalidCell."""
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            host = ""
    elif not _HOST_RE.match(host or "-"):
        host = ""
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise InvalidCell(
            f"frontend must be host:port (e.g. temporal.example.com:7233), got {address!r}",
            field="frontend",
        )
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_metrics_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidCell(
            f"metrics_url must be an http:// or https:// URL, got {url!r}", field="metrics_url"
        )
    return url


def validate_tls(
    ca: str | None, cert: str | None, key: str | None, server_name: str | None
) -> CellTls | None:
    """The TLS material in canonical PEM, checked: a CA bundle, a certificate chain whose first
    certificate matches the (unencrypted) private key."""
    given = {"tls_ca": ca, "tls_cert": cert, "tls_key": key}
    if not any(given.values()):
        if server_name:
            raise InvalidCell("server_name needs TLS (tls_ca, tls_cert, tls_key)", field="tls")
        return None
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise InvalidCell(
            f"TLS needs tls_ca, tls_cert and tls_key together; missing {', '.join(missing)}",
            field=missing[0],
        )
    assert ca is not None
    assert cert is not None
    assert key is not None
    try:
        bundle = parse_ca_bundle(ca)
    except InvalidCABundle as error:
        raise InvalidCell(f"tls_ca: {error.reason}", field="tls_ca") from None
    try:
        chain = x509.load_pem_x509_certificates(cert.encode())
    except ValueError:
        raise InvalidCell("tls_cert: not a PEM certificate (chain)", field="tls_cert") from None
    try:
        private_key = serialization.load_pem_private_key(key.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidCell("tls_key: not an unencrypted PEM private key", field="tls_key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if private_key.public_key().public_bytes(encoding, public) != chain[
        0
    ].public_key().public_bytes(encoding, public):
        raise InvalidCell(
            "tls_key does not belong to the first certificate of tls_cert", field="tls_key"
        )
    if server_name and not _HOST_RE.match(server_name):
        raise InvalidCell(
            f"server_name must be a DNS name, got {server_name!r}", field="server_name"
        )
    return CellTls(
        ca_pem=bundle.pem,
        cert_pem="".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain),
        key_pem=private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        server_name=server_name or "",
    )


async def register(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    *,
    name: str,
    frontend: str,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    server_name: str | None,
    metrics_url: str | None,
    max_namespaces: int,
    placement: CellPlacement,
    probe_timeout: float = 5.0,
) -> Cell:
    _manage(principal)
    validate_name(name)
    host, _ = split_address(frontend)
    tls = validate_tls(tls_ca, tls_cert, tls_key, server_name)
    if tls is None and not is_loopback(host):
        raise InvalidCell(
            "a cell without TLS must be on loopback (127.0.0.1, ::1, localhost); give "
            "tls_ca, tls_cert and tls_key for a cell reached over the network",
            field="frontend",
        )
    if metrics_url:
        validate_metrics_url(metrics_url)
    if await session.get(Cell, name) is not None:
        raise AlreadyExists(f"cell {name} is already registered", field="name")
    result = await probe(frontend, tls, timeout=probe_timeout)
    if not result.reachable:
        raise CellUnreachable(result)
    cell = Cell(
        id=name,
        account_id=None,
        provider=CellProviderKind.EXTERNAL.value,
        address=frontend,
        metrics_url=metrics_url or "",
        placement=placement,
        max_namespaces=max_namespaces,
        state=CellState.ACTIVE,
        server_version=result.server_version[:64],
        tls_ca_pem=tls.ca_pem if tls else None,
        tls_cert_pem=tls.cert_pem if tls else None,
        tls_key_sealed=box.seal(tls.key_pem, bound_to=key_binding(name)) if tls else None,
        server_name=tls.server_name if tls else "",
        health_state=CellProbeState.HEALTHY,
        health_reason="",
        health_checked_at=utcnow(),
    )
    session.add(cell)
    details: dict[str, Any] = {
        "frontend": frontend,
        "placement": placement.value,
        "max_namespaces": max_namespaces,
        "server_version": cell.server_version,
        "tls": tls is not None,
    }
    if tls is not None:
        details["tls_ca_sha256"] = [
            c.fingerprint(hashes.SHA256()).hex()
            for c in x509.load_pem_x509_certificates(tls.ca_pem.encode())
        ]
        details["server_name"] = tls.server_name
    audit.record(
        session,
        principal,
        action="cell.register",
        target=f"cell/{name}",
        account_id=None,
        details=details,
    )
    await session.flush()
    return cell


async def _get(session: AsyncSession, cell_id: str) -> Cell:
    cell = await session.get(Cell, cell_id)
    if cell is None:
        raise NotFound(f"cell {cell_id} not found")
    return cell


async def namespace_counts(session: AsyncSession) -> dict[str, int]:
    """Namespaces per cell, in any state (one being created or deleted holds its place)."""
    statement = (
        select(Namespace.cell_id, func.count())
        .where(Namespace.cell_id.is_not(None))
        .group_by(Namespace.cell_id)
    )
    return {str(cell_id): count for cell_id, count in await session.execute(statement)}


async def page(
    session: AsyncSession, principal: Principal, page: PageRequest, *, state: CellState | None
) -> Page[Cell]:
    """A page of every cell by id (operator); ``state`` narrows it."""
    _manage(principal)
    return await CellRepository(session).page(page, state=state)


async def list_all(session: AsyncSession, principal: Principal) -> list[Cell]:
    _manage(principal)
    return list((await session.execute(select(Cell).order_by(Cell.id))).scalars())


async def get(session: AsyncSession, principal: Principal, cell_id: str) -> Cell:
    _manage(principal)
    return await _get(session, cell_id)


async def namespaces_on(session: AsyncSession, cell_id: str) -> list[Namespace]:
    statement = select(Namespace).where(Namespace.cell_id == cell_id).order_by(Namespace.id)
    return list((await session.execute(statement)).scalars())


async def set_state(
    session: AsyncSession, principal: Principal, cell_id: str, state: CellState
) -> Cell:
    """Drain (no new namespaces; those on it stay) or undrain a cell."""
    _manage(principal)
    cell = await _get(session, cell_id)
    if cell.state != state:
        previous = cell.state
        cell.state = state
        audit.record(
            session,
            principal,
            action="cell.drain" if state == CellState.DRAINING else "cell.undrain",
            target=f"cell/{cell_id}",
            account_id=None,
            details={"from": previous.value, "to": state.value},
        )
        await session.flush()
    return cell


async def deregister(session: AsyncSession, principal: Principal, cell_id: str) -> None:
    """Forget a registered cell; refused while any namespace lives on it."""
    _manage(principal)
    cell = await _get(session, cell_id)
    if cell.provider != CellProviderKind.EXTERNAL:
        raise Conflict(
            f"cell {cell_id} is a {cell.provider} cell: Stratus runs it for its account",
            field="cell_id",
        )
    # Lock the row first, so no create places a namespace on it while it goes.
    await session.execute(update(Cell).where(Cell.id == cell_id).values(updated_at=utcnow()))
    count = (await namespace_counts(session)).get(cell_id, 0)
    if count:
        raise Conflict(
            f"cell {cell_id} still holds {count} namespace(s); drain it and delete or move them "
            "first",
            field="cell_id",
        )
    await session.delete(cell)
    audit.record(
        session,
        principal,
        action="cell.deregister",
        target=f"cell/{cell_id}",
        account_id=None,
        details={"frontend": cell.address},
    )
    await session.flush()


async def _claim(session: AsyncSession, cell: Cell, *, account_id: str | None) -> bool:
    """Lock ``cell`` and take a place on it if it is still active with room (and, for a
    dedicated cell, still free or the account's own)."""
    await session.execute(update(Cell).where(Cell.id == cell.id).values(updated_at=utcnow()))
    await session.refresh(cell)
    if cell.state != CellState.ACTIVE:
        return False
    if account_id is not None and cell.account_id not in (None, account_id):
        return False
    count = (await namespace_counts(session)).get(cell.id, 0)
    if cell.max_namespaces is not None and count >= cell.max_namespaces:
        return False
    if account_id is not None and cell.account_id is None:
        cell.account_id = account_id
    return True


async def place(
    session: AsyncSession,
    namespace: Namespace,
    policy: CellPlacement,
    *,
    provider: CellProviderKind = CellProviderKind.LOCAL,
) -> Cell | None:
    """Choose the cell of a new namespace and record it on the namespace; None leaves it to the
    provisioning workflow (dedicated placement with the local ``provider``: the account's local
    cell, made on first use). Raises NoCellCapacity when the policy finds no cell with room, and,
    with the external provider, when dedicated placement finds no registered cell: that provider
    runs no cell, so nothing falls back to a local one."""
    if policy == CellPlacement.SHARED:
        counts = await namespace_counts(session)
        statement = select(Cell).where(
            Cell.placement == CellPlacement.SHARED, Cell.state == CellState.ACTIVE
        )
        candidates = sorted(
            (await session.execute(statement)).scalars(),
            key=lambda cell: (counts.get(cell.id, 0), cell.id),
        )
        for cell in candidates:
            if await _claim(session, cell, account_id=None):
                namespace.cell_id = cell.id
                return cell
        raise NoCellCapacity(
            "no active shared cell has room for another namespace (the operator registers "
            "cells with `stratus cell register --placement shared`)"
        )
    own = (
        await session.execute(select(Cell).where(Cell.account_id == namespace.account_id))
    ).scalar_one_or_none()
    if own is not None:
        if own.provider != CellProviderKind.EXTERNAL:
            if provider == CellProviderKind.EXTERNAL:
                # Made before the switch to the external provider, which cannot run it.
                raise NoCellCapacity(
                    f"the account's cell {own.id} is a local cell and STRATUS_CELL_PROVIDER="
                    "external runs none; move the account's namespaces to a registered cell"
                )
            return None  # the local cell: ensure_cell starts it
        if await _claim(session, own, account_id=namespace.account_id):
            namespace.cell_id = own.id
            return own
        raise NoCellCapacity(f"the account's dedicated cell {own.id} is {own.state.value} or full")
    statement = (
        select(Cell)
        .where(
            Cell.placement == CellPlacement.DEDICATED,
            Cell.provider == CellProviderKind.EXTERNAL.value,
            Cell.state == CellState.ACTIVE,
            Cell.account_id.is_(None),
        )
        .order_by(Cell.id)
    )
    for cell in (await session.execute(statement)).scalars():
        if await _claim(session, cell, account_id=namespace.account_id):
            namespace.cell_id = cell.id
            return cell
    if provider == CellProviderKind.EXTERNAL:
        raise NoCellCapacity(
            "no registered dedicated cell is free for this account (the operator registers "
            "cells with `stratus cell register --placement dedicated`)"
        )
    return None
