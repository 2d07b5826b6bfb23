"""Cells: isolated Temporal clusters, one per account, run by a provider and kept running by a
watcher."""

from dataplane.cells._local import LocalCellProvider, temporal_binary
from dataplane.cells._provider import CellError, CellProvider, CellSpec, CellStatus
from dataplane.cells._watch import CellHealthState, CellReport, CellWatcher, RestartPolicy

__all__ = [
    "CellError",
    "CellHealthState",
    "CellProvider",
    "CellReport",
    "CellSpec",
    "CellStatus",
    "CellWatcher",
    "LocalCellProvider",
    "RestartPolicy",
    "temporal_binary",
]
