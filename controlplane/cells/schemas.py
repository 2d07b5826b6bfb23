"""The operator's view of cells (``/api/v1/cells``). No ORM here: the CLI and the typed client
import these. A cell's client key is write-only: nothing here carries it back."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from controlplane.kit.page_schema import PagedList
from controlplane.states import CellPlacement, CellProbeState, CellState

MAX_PEM_CHARS = 64 * 1024


class CellRegister(BaseModel):
    """A Temporal cluster to register as an external cell. TLS (CA, client certificate and key)
    comes all together or not at all; without it the frontend must be on loopback."""

    name: str = Field(max_length=63, description="Canonical: lowercase letters, digits and '-'")
    frontend: str = Field(max_length=255, description="host:port of the Temporal frontend")
    tls_ca: str | None = Field(default=None, max_length=MAX_PEM_CHARS)
    tls_cert: str | None = Field(default=None, max_length=MAX_PEM_CHARS)
    tls_key: str | None = Field(default=None, max_length=MAX_PEM_CHARS)
    server_name: str | None = Field(default=None, max_length=253)
    metrics_url: str | None = Field(default=None, max_length=255)
    max_namespaces: int = Field(ge=1, le=100_000)
    placement: CellPlacement = CellPlacement.DEDICATED


class CellHealthOut(BaseModel):
    state: CellProbeState
    reason: str
    checked_at: dt.datetime | None


class CellNamespaceOut(BaseModel):
    namespace_id: str
    account_id: str


class CellOut(BaseModel):
    id: str
    name: str
    provider: str
    frontend: str
    metrics_url: str
    placement: CellPlacement
    max_namespaces: int | None
    state: CellState
    server_version: str
    tls: bool
    server_name: str
    # The account a dedicated cell serves (None: not yet used, or shared).
    account_id: str | None
    namespace_count: int
    health: CellHealthOut
    # Only on GET /cells/{id}: the namespaces placed on the cell.
    namespaces: list[CellNamespaceOut] | None = None


class CellList(PagedList):
    cells: list[CellOut]
