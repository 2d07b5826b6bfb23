"""Every step of a namespace operation is scheduled with a short heartbeat timeout, so a step
whose worker is killed (the kill -9 test in test_restart_e2e) is retried on another worker
within seconds, not when its two-minute start-to-close timeout expires."""

from __future__ import annotations

import datetime as dt

import pytest
from support import StratusUp, new_tenant
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from controlplane.kit.heartbeat import HEARTBEAT_EVERY
from dataplane.cells import LocalCellProvider

# The database plays no part in what the workflow schedules (the same workflow code runs on
# both); one variant is enough.
pytestmark = pytest.mark.sqlite_only


async def test_every_namespace_step_has_a_short_heartbeat_timeout(stratus: StratusUp) -> None:
    tenant = new_tenant(stratus, "Beating")
    with tenant.client(stratus) as api:
        created = api.create_namespace("steps", tenant.ca.cert_pem.decode())
        operation = api.wait_for_operation(created.async_operation.id, timeout=120)
        assert operation.state == "FULFILLED", operation.failure_reason

    system = await Client.connect(
        LocalCellProvider(stratus.data_dir / "cells").address("system"), namespace="default"
    )
    history = await system.get_workflow_handle(created.async_operation.id).fetch_history()
    scheduled = {
        event.activity_task_scheduled_event_attributes.activity_type.name: (
            event.activity_task_scheduled_event_attributes.heartbeat_timeout.ToTimedelta()
        )
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    assert set(scheduled) == {
        "mark_operation_in_progress",
        "ensure_cell",
        "register_namespace",
        "publish_route",
        "await_route_propagation",
        "complete_namespace_create",
    }
    # Set, several heartbeat intervals long (a busy worker still beats in time), and short.
    shortest, longest = dt.timedelta(seconds=5 * HEARTBEAT_EVERY), dt.timedelta(seconds=15)
    for step, timeout in scheduled.items():
        assert shortest <= timeout <= longest, step
