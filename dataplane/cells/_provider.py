"""The cell provider interface: how the control plane gets, starts and finds Temporal clusters."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from dataplane.cells._tls import CellTls


class CellStatus(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class CellProviderKind(enum.StrEnum):
    """Which provider runs cells (``STRATUS_CELL_PROVIDER``)."""

    # ``temporal server start-dev`` processes on this host's loopback.
    LOCAL = "local"
    # Temporal clusters the operator runs and registers (``stratus cell register``).
    EXTERNAL = "external"


@dataclass(frozen=True)
class CellEndpoint:
    """Where a cell is reached, as its provider allocated it. The control plane stores it once
    (routes point at ``grpc_address``, the meter scrapes ``metrics_url``) and hands it back to
    ``start``; it stays the same across restarts, so routing entries stay valid."""

    cell_id: str
    # The provider that runs the cell (a CellProviderKind value).
    provider: str
    # host:port of the cell's Temporal frontend (gRPC).
    grpc_address: str
    # Prometheus endpoint with Temporal's per-namespace ``action`` counter.
    metrics_url: str
    # TLS to the frontend (a registered cell); None: plaintext, only for local cells on loopback.
    tls: CellTls | None = None


class CellError(RuntimeError):
    """A cell could not be provisioned, started or reached."""


class ProvisioningRefused(CellError):
    """The provider never provisions cells (retrying cannot help)."""


class CellProvider(Protocol):
    """Runs cells. The ``local`` provider uses processes; a Kubernetes provider renders manifests.

    Every method is idempotent: provisioning a provisioned cell returns its endpoint again,
    starting a running cell or stopping a stopped one is a no-op.
    """

    @property
    def kind(self) -> CellProviderKind: ...

    async def provision(self, cell_id: str) -> CellEndpoint:
        """Allocate the cell's endpoint (without starting it)."""
        ...

    async def start(self, cell: CellEndpoint) -> None: ...

    async def stop(self, cell_id: str) -> None: ...

    async def remove(self, cell_id: str) -> None:
        """Stop the cell and delete its data for good (a deleted account's, after the
        retention). Idempotent."""
        ...

    async def status(self, cell_id: str) -> CellStatus: ...

    def known_cells(self) -> list[str]:
        """The cells this provider has provisioned (e.g. to stop them all on shutdown)."""
        ...
