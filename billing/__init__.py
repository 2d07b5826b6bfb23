"""Metering and billing: exact per-namespace usage from the cells.

The action meter scrapes each cell's Temporal ``action`` counter and writes one usage row per
(namespace, UTC hour, kind); see ``docs/billing.md`` for what is metered and how. The meters
write through :class:`UsageStore`, which the control plane implements over its database:
nothing here imports the control plane.
"""

from billing._egress import (
    EgressPolicy,
    EndpointNotAllowed,
    InvalidEndpoint,
    Resolver,
    address_class,
    parse_endpoint_url,
    system_resolver,
)
from billing._export import (
    USAGE_CSV_COLUMNS,
    S3ExportTarget,
    UsageRow,
    export_invoice,
    export_usage_hour,
    failure_category,
    invoice_object_keys,
    s3_client,
    usage_csv,
    usage_object_key,
)
from billing._exposition import CellCounters, namespace_id_from_label, read_cell_counters
from billing._kinds import (
    ACTION_KINDS,
    ACTION_WEIGHTS,
    NOT_BILLED,
    SCHEDULE_EXECUTIONS,
    ActionKind,
    action_kind,
    action_weight,
)
from billing._meter import ConcurrentScrape, Meter, MeteredCell, ScrapeReport, hour_of
from billing._price_book import (
    ActionTier,
    Plan,
    PlanFee,
    PriceBook,
    PriceBookError,
    load_price_book,
    parse_price_book,
)
from billing._rating import (
    Credit,
    CreditApplied,
    InvoiceDraft,
    LineItem,
    NamespaceCharge,
    PlanPeriod,
    RatingError,
    rate_invoice,
    rate_month,
    round_cents,
)
from billing._storage import StorageMeter, StorageReport, StorageTarget
from billing._usage_store import (
    ScrapeSource,
    SeriesKey,
    UsageKey,
    UsageStore,
    UsageUnitOfWork,
)

__all__ = [
    "ACTION_KINDS",
    "ACTION_WEIGHTS",
    "NOT_BILLED",
    "SCHEDULE_EXECUTIONS",
    "USAGE_CSV_COLUMNS",
    "ActionKind",
    "ActionTier",
    "CellCounters",
    "ConcurrentScrape",
    "Credit",
    "CreditApplied",
    "EgressPolicy",
    "EndpointNotAllowed",
    "InvalidEndpoint",
    "InvoiceDraft",
    "LineItem",
    "Meter",
    "MeteredCell",
    "NamespaceCharge",
    "Plan",
    "PlanFee",
    "PlanPeriod",
    "PriceBook",
    "PriceBookError",
    "RatingError",
    "Resolver",
    "S3ExportTarget",
    "ScrapeReport",
    "ScrapeSource",
    "SeriesKey",
    "StorageMeter",
    "StorageReport",
    "StorageTarget",
    "UsageKey",
    "UsageRow",
    "UsageStore",
    "UsageUnitOfWork",
    "action_kind",
    "action_weight",
    "address_class",
    "export_invoice",
    "export_usage_hour",
    "failure_category",
    "hour_of",
    "invoice_object_keys",
    "load_price_book",
    "namespace_id_from_label",
    "parse_endpoint_url",
    "parse_price_book",
    "rate_invoice",
    "rate_month",
    "read_cell_counters",
    "round_cents",
    "s3_client",
    "system_resolver",
    "usage_csv",
    "usage_object_key",
]
