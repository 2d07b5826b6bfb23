"""Gathering a namespace's evidence from its cell and running the detectors over it."""

from __future__ import annotations

from dataclasses import dataclass

import grpc.aio

__all__ = ["CellSource"]


@dataclass(frozen=True)
class CellSource:
    """Where a namespace's evidence lives: its cell's frontend and metrics endpoint."""

    channel: grpc.aio.Channel  # to the cell's frontend (dataplane.cells.grpc_channel)
    namespace: str  # the namespace as the cell knows it (= namespace id)
    metrics_url: str | None  # the cell's Prometheus endpoint ("" / None: none)
