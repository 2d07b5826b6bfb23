"""What the metrics endpoint reads from the control plane's tables, scoped to the caller."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from auth import Action
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import (
    Cell,
    GatewayLatencyBucket,
    Namespace,
    ThrottledHour,
    UsageRecord,
)


class TenantMetricsRepository(TenantRepository):
    """The caller's account's namespaces, usage and throttled answers, for its metrics."""

    async def readable_namespaces(self) -> list[tuple[str, str | None]]:
        """(namespace id, its cell's metrics URL or None) of the account's namespaces whose
        metrics the caller may read (the policy decides per namespace), by id."""
        statement = self._scoped_to_namespaces(
            select(Namespace.id, Cell.metrics_url)
            .outerjoin(Cell, Cell.id == Namespace.cell_id)
            .order_by(Namespace.id),
            Namespace.account_id,
            Namespace.id,
            Action.METRICS_READ,
        )
        return [
            (namespace_id, metrics_url or None)
            for namespace_id, metrics_url in await self.session.execute(statement)
        ]

    async def usage_totals(self, month: dt.datetime) -> list[tuple[str, str, int]]:
        """(namespace id, kind, quantity metered in the UTC month starting at ``month``) of
        every namespace of the account: the database adds the hours up, reading the rating
        index only (one month of one account)."""
        statement = (
            self._scoped(
                select(UsageRecord.namespace_id, UsageRecord.kind, func.sum(UsageRecord.quantity)),
                UsageRecord.account_id,
            )
            .where(UsageRecord.period_start == month)
            .group_by(UsageRecord.namespace_id, UsageRecord.kind)
        )
        return [
            (namespace_id, kind, int(total))
            for namespace_id, kind, total in await self.session.execute(statement)
        ]

    async def throttled_totals(self, month: dt.datetime) -> dict[str, int]:
        """Namespace id → RESOURCE_EXHAUSTED answers the gateways gave its callers in the
        hours since ``month`` of the account's current namespaces. ``throttled_hours`` has no
        account column: its namespaces are the account's own."""
        own = self._scoped(select(Namespace.id), Namespace.account_id)
        statement = (
            select(ThrottledHour.namespace_id, func.sum(ThrottledHour.answers))
            .where(ThrottledHour.namespace_id.in_(own), ThrottledHour.hour_start >= month)
            .group_by(ThrottledHour.namespace_id)
        )
        return {
            namespace_id: int(total)
            for namespace_id, total in await self.session.execute(statement)
        }

    async def gateway_latency(self) -> dict[str, dict[str, int]]:
        """Namespace id → bucket → calls (and ``sum_us``) of the gateways' latency counts of
        the account's current namespaces."""
        own = self._scoped(select(Namespace.id), Namespace.account_id)
        row = GatewayLatencyBucket
        statement = select(row.namespace_id, row.bucket, row.count).where(row.namespace_id.in_(own))
        latency: dict[str, dict[str, int]] = {}
        for namespace_id, bucket, count in await self.session.execute(statement):
            latency.setdefault(namespace_id, {})[bucket] = int(count)
        return latency
