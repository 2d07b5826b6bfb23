"""Namespaces on a real cell for the meter tests, registered straight on the cell."""

from __future__ import annotations

import asyncio
import time

from google.protobuf.duration_pb2 import Duration
from temporalio.api.workflowservice.v1 import request_response_pb2 as wsv1
from temporalio.client import Client


async def register_namespace(address: str, namespace: str, task_queue: str) -> None:
    """Register ``namespace`` (one day of retention) and wait until the frontend serves it,
    polling with a call that is not a billable action."""
    client = await Client.connect(address)
    await client.workflow_service.register_namespace(
        wsv1.RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86_400)
        )
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            await client.workflow_service.describe_task_queue(
                wsv1.DescribeTaskQueueRequest(namespace=namespace, task_queue={"name": task_queue})
            )
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
