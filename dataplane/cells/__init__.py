"""Cells: isolated Temporal clusters, one per account, run by a provider."""

from dataplane.cells._local import LocalCellProvider, temporal_binary
from dataplane.cells._provider import CellError, CellProvider, CellSpec, CellStatus

__all__ = [
    "CellError",
    "CellProvider",
    "CellSpec",
    "CellStatus",
    "LocalCellProvider",
    "temporal_binary",
]
