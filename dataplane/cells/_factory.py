"""The one place a provider kind becomes a provider."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dataplane.cells._external import ExternalCellProvider
from dataplane.cells._local import DEFAULT_STOP_TIMEOUT, LocalCellProvider
from dataplane.cells._provider import CellProvider, CellProviderKind


def create_provider(
    kind: CellProviderKind,
    state_dir: Path,
    *,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    dynamic_config: Mapping[str, str] | None = None,
) -> CellProvider:
    """The provider of ``kind``, keeping its state under ``state_dir``. ``stop_timeout`` bounds
    a cell's graceful stop; ``dynamic_config`` adds Temporal dynamic-config values to the
    cells it starts (e.g. the system cell's fair dispatch). The ``external`` provider runs
    nothing and keeps no state."""
    if kind == CellProviderKind.LOCAL:
        return LocalCellProvider(
            state_dir, stop_timeout=stop_timeout, dynamic_config=dynamic_config
        )
    if kind == CellProviderKind.EXTERNAL:
        return ExternalCellProvider()
    raise ValueError(f"unknown cell provider {kind!r}")
