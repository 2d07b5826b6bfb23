"""Metering and billing: exact per-namespace usage from the cells.

The action meter scrapes each cell's Temporal ``action`` counter and writes one usage row per
(namespace, UTC hour, kind); see ``docs/billing.md`` for what is metered and how.
"""

from billing._exposition import CellCounters, namespace_id_from_label, read_cell_counters
from billing._kinds import ACTION_KINDS, ActionKind, action_kind
from billing._meter import CellEndpoint, Meter, ScrapeReport, hour_of

__all__ = [
    "ACTION_KINDS",
    "ActionKind",
    "CellCounters",
    "CellEndpoint",
    "Meter",
    "ScrapeReport",
    "action_kind",
    "hour_of",
    "namespace_id_from_label",
    "read_cell_counters",
]
