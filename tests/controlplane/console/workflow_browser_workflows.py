"""Workflows the workflow-browser tests run (own module: the SDK sandbox re-imports it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError


@activity.defn
async def price_order(order: dict[str, Any]) -> dict[str, Any]:
    return {"order": order["id"], "total": order["quantity"] * 3, "note": order["note"]}


@workflow.defn
class PricingWorkflow:
    """Completes with a JSON result computed by one activity."""

    @workflow.run
    async def run(self, order: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await workflow.execute_activity(
            price_order, order, start_to_close_timeout=timedelta(seconds=30)
        )
        return result


@activity.defn
async def charge_card(card: bytes) -> None:
    raise ApplicationError("card declined")


@workflow.defn
class ChargeWorkflow:
    """Stays Running: its activity (bytes in, a binary payload) fails on every attempt."""

    @workflow.run
    async def run(self, card: bytes) -> None:
        await workflow.execute_activity(
            charge_card,
            card,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=200), backoff_coefficient=1.0
            ),
        )
