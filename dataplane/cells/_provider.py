"""The cell provider interface: how the control plane starts and finds Temporal clusters."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class CellStatus(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


@dataclass(frozen=True)
class CellSpec:
    """What a provider needs to run one cell. Ports are allocated once and persisted, so a cell
    keeps its address across restarts (routing entries stay valid)."""

    cell_id: str
    grpc_port: int
    metrics_port: int
    http_port: int


class CellError(RuntimeError):
    """A cell could not be started or reached."""


class CellProvider(Protocol):
    """Runs cells. The ``local`` provider uses processes; a Kubernetes provider renders manifests.

    Every method is idempotent: starting a running cell or stopping a stopped one is a no-op.
    """

    async def start(self, spec: CellSpec) -> None: ...

    async def stop(self, cell_id: str) -> None: ...

    async def status(self, cell_id: str) -> CellStatus: ...

    def address(self, cell_id: str) -> str: ...

    def metrics_url(self, cell_id: str) -> str: ...
