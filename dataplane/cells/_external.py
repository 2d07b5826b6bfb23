"""The ``external`` provider: cells are Temporal clusters the operator runs and registers
(``stratus cell register``); this provider runs nothing.

A worker whose cells are all registered (``STRATUS_CELL_PROVIDER=external``, as on Kubernetes)
uses it. Placement puts every namespace on a registered cell, so ``provision`` is only reached
when none has room, and refuses rather than start a cluster on the worker's host. Registered
cells are watched by the control plane's prober, not by a provider.
"""

from __future__ import annotations

from dataplane.cells._provider import (
    CellEndpoint,
    CellProviderKind,
    CellStatus,
    ProvisioningRefused,
)

PROVISION_REFUSAL = (
    "external cells are registered with `stratus cell register`, not provisioned"
    " (STRATUS_CELL_PROVIDER=external runs no cell of its own)"
)


class ExternalCellProvider:
    """The provider of registered cells: their operator starts and stops them."""

    @property
    def kind(self) -> CellProviderKind:
        return CellProviderKind.EXTERNAL

    async def provision(self, cell_id: str) -> CellEndpoint:
        raise ProvisioningRefused(f"cannot provision cell {cell_id}: {PROVISION_REFUSAL}")

    async def start(self, cell: CellEndpoint) -> None:
        """Nothing to start: the operator runs the cluster (its health is probed)."""

    async def stop(self, cell_id: str) -> None:
        """Nothing to stop: Stratus never stops a cluster it does not run."""

    async def remove(self, cell_id: str) -> None:
        """Nothing to remove: the cluster is the operator's (its namespaces were deleted)."""

    async def status(self, cell_id: str) -> CellStatus:
        """No cell runs under this provider (a registered cell's state is its probe's)."""
        return CellStatus.STOPPED

    def known_cells(self) -> list[str]:
        return []
