"""Starting an operation's workflow on the system cell.

Generic over what an operation does: the domain that defines the workflows (namespaces today)
hands the starter its map of operation type to workflow type, and every such workflow takes an
:class:`OperationInput`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from controlplane.config import SYSTEM_NAMESPACE, SYSTEM_TASK_QUEUE
from controlplane.kit.telemetry import temporal_interceptors
from dataplane.cells import CellTls, temporal_tls_config

logger = logging.getLogger(__name__)


@dataclass
class OperationInput:
    """What every operation workflow is started with: the operation's internal id (also the
    workflow id) and the id of the resource it changes."""

    operation_id: str
    resource_id: str


class OperationStarter:
    """Connects lazily to the system cell and starts workflows with id = operation id, so a
    repeated start (API retry, reconciler) never runs an operation twice.

    ``workflow_types`` maps each operation type (``namespace.create``) to the type name of
    the workflow that performs it (``CreateNamespace``)."""

    def __init__(
        self,
        system_cell_address: str,
        workflow_types: Mapping[str, str],
        *,
        tls: CellTls | None = None,
    ) -> None:
        self._address = system_cell_address
        self._tls = tls
        self._workflow_types = dict(workflow_types)
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._client = await Client.connect(
                    self._address,
                    namespace=SYSTEM_NAMESPACE,
                    interceptors=temporal_interceptors(),
                    tls=temporal_tls_config(self._tls),
                )
            return self._client

    async def start(
        self, operation_id: str, operation_type: str, resource_id: str, *, account_id: str
    ) -> bool:
        """Start the workflow; False when the system cell could not be reached (the worker's
        reconciler starts it later, the operation stays PENDING until then).

        The account is the workflow's fairness key: the system cell dispatches its workflow
        and activity tasks round-robin across accounts, so one account's backlog does not
        delay another's operations (see ``SYSTEM_CELL_DYNAMIC_CONFIG``)."""
        workflow = self._workflow_types[operation_type]
        try:
            client = await self.client()
            handle: WorkflowHandle[Any, Any] = await client.start_workflow(
                workflow,
                OperationInput(operation_id=operation_id, resource_id=resource_id),
                id=operation_id,
                task_queue=SYSTEM_TASK_QUEUE,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                priority=Priority(fairness_key=account_id),
            )
            logger.info("started %s for operation %s", handle.id, operation_id)
        except WorkflowAlreadyStartedError:
            pass
        except Exception as exc:
            # Best effort: the row is committed, and the worker's reconciler starts every
            # PENDING operation later with the same workflow id.
            logger.warning("could not start operation %s yet: %r", operation_id, exc)
            return False
        return True
