"""The cell provider of this installation, chosen by ``STRATUS_CELL_PROVIDER``: the worker
(account cells) and the supervisor (the system cell) both get theirs here."""

from __future__ import annotations

from collections.abc import Mapping

from controlplane.config import WorkerSettings
from dataplane.cells import DEFAULT_STOP_TIMEOUT, CellProvider, create_provider


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
