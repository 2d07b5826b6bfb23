"""The cell provider of this installation, chosen by ``STRATUS_CELL_PROVIDER``, for the worker
(account cells); and the supervisor's (``stratus up``), which runs the system cell locally
whatever that setting says (a deployment whose system cluster is external runs the roles with
``stratus serve`` and ``STRATUS_SYSTEM_CELL_ADDRESS`` instead)."""

from __future__ import annotations

from collections.abc import Mapping

from controlplane.config import WorkerSettings
from dataplane.cells import DEFAULT_STOP_TIMEOUT, CellProvider, CellProviderKind, create_provider


def cell_provider(
    settings: WorkerSettings,
    *,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    dynamic_config: Mapping[str, str] | None = None,
) -> CellProvider:
    return create_provider(
        settings.cell_provider,
        settings.cells_dir,
        stop_timeout=stop_timeout,
        dynamic_config=dynamic_config,
    )


def system_cell_provider(
    settings: WorkerSettings,
    *,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    dynamic_config: Mapping[str, str] | None = None,
) -> CellProvider:
    """The local provider ``stratus up`` runs its system cell with (and stops every local cell
    with on shutdown), whichever provider the worker uses for account cells."""
    return create_provider(
        CellProviderKind.LOCAL,
        settings.cells_dir,
        stop_timeout=stop_timeout,
        dynamic_config=dynamic_config,
    )
