"""Reading a cell's Prometheus exposition: Temporal's ``action`` counter per namespace."""

from __future__ import annotations

import re
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from billing._kinds import SCHEDULE_EXECUTIONS

# Temporal exports ``# TYPE action counter`` with samples ``action{action_type, namespace,
# operation, service_name}`` (the parser names the samples ``action_total``).
ACTION_FAMILY = "action"
# The schedules' own count of the workflows they started, read as the pseudo action type
# ``SCHEDULE_EXECUTIONS`` (Temporal Cloud bills schedules per execution).
SCHEDULE_FAMILY = "schedule_action_success"

# Temporal's own namespace and the dev server's ``default`` are not tenants'.
IGNORED_NAMESPACE_LABELS = frozenset({"temporal_system", "default"})

# The Prometheus reporter replaces every character outside [a-zA-Z0-9_] in label values with
# ``_``: namespace ``my-ns.a1b2c`` arrives as ``my_ns_a1b2c``. Namespace names never contain
# ``_`` and account ids are alphanumeric, so the last ``_`` was the dot and the others dashes.
_LABEL = re.compile(r"^(?P<name>[a-z][a-z0-9_]{0,37}[a-z0-9])_(?P<account>[a-z0-9]{5,16})$")


def namespace_id_from_label(label: str) -> str | None:
    """The Stratus namespace id a sanitized ``namespace`` label stands for, or ``None`` for
    Temporal's own and any namespace that is not a tenant's."""
    if label in IGNORED_NAMESPACE_LABELS:
        return None
    match = _LABEL.fullmatch(label)
    if match is None:
        return None
    name = match["name"].replace("_", "-")
    if "--" in name:
        return None
    return f"{name}.{match['account']}"


@dataclass(frozen=True)
class CellCounters:
    """One scrape of one cell.

    ``actions`` maps (namespace id, action type) to the counter's value, summed over the
    series' other labels (service, operation); the schedules' executions appear under the
    action type ``SCHEDULE_EXECUTIONS``. ``counter_total`` sums every counter the cell
    exports; it only grows while the process lives.
    """

    actions: dict[tuple[str, str], int]
    counter_total: int


def _counter_lines(text: str) -> str:
    """Only the counter families of ``text``: a cell's exposition is mostly histogram buckets
    (about 9 lines in 10, megabytes per namespace), which the meter never reads and which the
    parser would spend most of its time on."""
    kept: list[str] = []
    keep = False
    for line in text.splitlines():
        if line.startswith("#"):
            parts = line.split(maxsplit=3)
            if len(parts) == 4 and parts[1] == "TYPE":
                keep = parts[3].strip() == "counter"
            if keep:
                kept.append(line)
        elif keep:
            kept.append(line)
    kept.append("")
    return "\n".join(kept)


def read_cell_counters(text: str) -> CellCounters:
    """Parse Prometheus text from a cell's metrics endpoint."""
    actions: dict[tuple[str, str], int] = {}
    counter_total = 0.0
    for family in text_string_to_metric_families(_counter_lines(text)):
        if family.type != "counter":
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue  # ``_created`` timestamps are not counts
            counter_total += sample.value
            if family.name == ACTION_FAMILY:
                action_type = sample.labels.get("action_type", "")
            elif family.name == SCHEDULE_FAMILY:
                action_type = SCHEDULE_EXECUTIONS
            else:
                continue
            namespace_id = namespace_id_from_label(sample.labels.get("namespace", ""))
            if namespace_id is None or not action_type:
                continue
            key = (namespace_id, action_type)
            actions[key] = actions.get(key, 0) + round(sample.value)
    return CellCounters(actions=actions, counter_total=round(counter_total))
