"""The steps of the namespace workflows (``controlplane.namespaces.workflows``), run by the
control plane's worker. Each is idempotent: it checks what is already done and does only the
rest, so Temporal can retry or replay it after any crash.

Activity names on the wire are the method names: workflows already in flight on a running
system cell schedule them by those names, so a rename is a breaking change."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from google.protobuf.duration_pb2 import Duration
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.namespace.v1 import NamespaceConfig, UpdateNamespaceInfo
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    DeleteNamespaceRequest,
    ListSearchAttributesRequest,
    RemoveSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from auth import SecretBox
from controlplane.audit import service as audit
from controlplane.cells.repository import CellRepository
from controlplane.gateway_routes import service as routes
from controlplane.kit.db import unit_of_work
from controlplane.kit.heartbeat import heartbeats
from controlplane.models import Cell, Namespace, NamespaceState, OperationState
from controlplane.namespaces.repository import SystemNamespaceRepository
from controlplane.operations import service as operations
from controlplane.operations.repository import SystemOperationRepository
from controlplane.states import SearchAttributeType
from dataplane.cells import (
    CellEndpoint,
    CellProvider,
    ProvisioningRefused,
    temporal_tls_config,
)
from dataplane.gateway import RouteEntry

logger = logging.getLogger(__name__)

_INDEXED_VALUE_TYPE = {
    SearchAttributeType.TEXT: IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    SearchAttributeType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    SearchAttributeType.DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    SearchAttributeType.BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    SearchAttributeType.DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    SearchAttributeType.KEYWORD_LIST: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


def _aborted(message: str) -> ApplicationError:
    return ApplicationError(message, type="OperationAborted", non_retryable=True)


class NamespaceActivities:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        provider: CellProvider,
        box: SecretBox | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._provider = provider
        # Opens registered cells' client keys (None: only plaintext local cells are reached).
        self._box = box
        self._clients: dict[CellEndpoint, Client] = {}

    def _unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return unit_of_work(self._sessionmaker)

    def _endpoint(self, cell: Cell) -> CellEndpoint:
        return cell.endpoint_with(self._box.open if self._box is not None else None)

    async def _cell_client(self, endpoint: CellEndpoint) -> Client:
        """A client of the cell's frontend, over the cell's TLS when it has one (one per
        endpoint: a cell registered again with other TLS gets a new client)."""
        client = self._clients.get(endpoint)
        if client is None:
            client = await Client.connect(
                endpoint.grpc_address,
                namespace="default",
                tls=temporal_tls_config(endpoint.tls),
            )
            self._clients[endpoint] = client
        return client

    async def _namespace(self, session: AsyncSession, namespace_id: str) -> Namespace:
        namespace = await SystemNamespaceRepository(session).get(namespace_id)
        if namespace is None:
            raise _aborted(f"namespace {namespace_id} no longer exists")
        return namespace

    async def _cell_of(self, session: AsyncSession, namespace: Namespace) -> Cell:
        cell = (
            await CellRepository(session).get(namespace.cell_id)
            if namespace.cell_id is not None
            else None
        )
        if cell is None:
            raise ApplicationError(f"no cell yet for namespace {namespace.id}")
        return cell

    @activity.defn
    @heartbeats
    async def mark_operation_in_progress(self, operation_id: str) -> str:
        async with self._unit() as session:
            state = await operations.mark_in_progress(session, operation_id)
        if state is None:
            raise _aborted(f"operation {operation_id} does not exist")
        return state.value

    @activity.defn
    @heartbeats
    async def ensure_cell(self, namespace_id: str) -> str:
        """A namespace placed on a registered cell (at create) is there already. Otherwise
        (dedicated placement with the local provider), on first use have the provider provision
        the account's cell and record the endpoint it returns (fixed from then on); start the
        cell. Returns the cell's address."""
        async with self._unit() as session:
            namespace = await self._namespace(session, namespace_id)
            repository = CellRepository(session)
            cell: Cell | None
            if namespace.cell_id is not None:
                cell = await self._cell_of(session, namespace)
                if cell.provider != self._provider.kind:
                    return cell.address  # a registered cell: its operator runs it
            else:
                cell = await repository.get_for_account(namespace.account_id)
            if cell is None:
                # Idempotent: a retry (or a concurrent namespace of the account) gets the same.
                try:
                    endpoint = await self._provider.provision(f"cell-{namespace.account_id}")
                except ProvisioningRefused as refused:
                    # E.g. the external provider: the operation fails now, with the reason.
                    raise _aborted(str(refused)) from None
                cell = Cell(
                    id=endpoint.cell_id,
                    account_id=namespace.account_id,
                    provider=endpoint.provider,
                    address=endpoint.grpc_address,
                    metrics_url=endpoint.metrics_url,
                )
                repository.add(cell)
                try:
                    await session.flush()
                except IntegrityError:
                    # Another namespace of the account created it concurrently: retry reads it.
                    raise ApplicationError("cell created concurrently; retrying") from None
                audit.record(
                    session,
                    None,
                    action="cell.create",
                    target=cell.id,
                    account_id=namespace.account_id,
                )
            namespace.cell_id = cell.id
            endpoint = self._endpoint(cell)
        await self._provider.start(endpoint)
        return endpoint.grpc_address

    @activity.defn
    @heartbeats
    async def register_namespace(self, namespace_id: str) -> str:
        """Register the namespace on its cell (or align the retention and custom search
        attributes of an existing one) and record the cell's id for it, which task tokens
        carry."""
        async with self._unit() as session:
            namespace = await self._namespace(session, namespace_id)
            cell = await self._cell_of(session, namespace)
            retention = Duration(seconds=namespace.retention_days * 86400)
            account_id = namespace.account_id
            endpoint = self._endpoint(cell)
            attributes = dict(namespace.search_attributes)
            pending = dict(namespace.search_attribute_pending)
        service = (await self._cell_client(endpoint)).workflow_service
        try:
            await service.register_namespace(
                RegisterNamespaceRequest(
                    namespace=namespace_id,
                    workflow_execution_retention_period=retention,
                    description=f"Stratus namespace of account {account_id}",
                )
            )
        except RPCError as error:
            if error.status != RPCStatusCode.ALREADY_EXISTS:
                raise
        described = await service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace_id)
        )
        if described.config.workflow_execution_retention_ttl != retention:
            await service.update_namespace(
                UpdateNamespaceRequest(
                    namespace=namespace_id,
                    update_info=UpdateNamespaceInfo(),
                    config=NamespaceConfig(workflow_execution_retention_ttl=retention),
                )
            )
        cell_namespace_id: str = described.namespace_info.id
        await self._align_search_attributes(
            await self._cell_client(endpoint), namespace_id, attributes, pending
        )
        async with self._unit() as session:
            namespace = await self._namespace(session, namespace_id)
            namespace.cell_namespace_id = cell_namespace_id
            if namespace.search_attribute_pending == pending:
                namespace.search_attribute_pending = {}
        return cell_namespace_id

    async def _align_search_attributes(
        self,
        client: Client,
        namespace_id: str,
        desired: dict[str, str],
        pending: dict[str, object],
    ) -> None:
        """Make the cell's custom search attributes of the namespace what is stored: renames
        first (Temporal's SQL visibility keeps each attribute in a column with the name as its
        alias, so a rename re-aliases the column and stored values keep being found), then
        removals, then additions. Each part checks the cell first, so a retry does the rest."""
        operator = client.operator_service
        renames = pending.get("rename") or {}
        removals = pending.get("remove") or []
        assert isinstance(renames, dict)
        assert isinstance(removals, list)

        async def custom() -> dict[str, int]:
            listed = await operator.list_search_attributes(
                ListSearchAttributesRequest(namespace=namespace_id)
            )
            return dict(listed.custom_attributes)

        try:
            present = await custom()
            for old, new in renames.items():
                if new in present or old not in present:
                    continue
                await self._rename_search_attribute(client, namespace_id, str(old), str(new))
            present = await custom()
            gone = [name for name in removals if name in present]
            if gone:
                await operator.remove_search_attributes(
                    RemoveSearchAttributesRequest(namespace=namespace_id, search_attributes=gone)
                )
            present = await custom()
            for name, kind in desired.items():
                if (
                    name in present
                    and present[name] != _INDEXED_VALUE_TYPE[SearchAttributeType(kind)]
                ):
                    raise _aborted(
                        f"the cell already has search attribute {name} with another type"
                    )
            missing = {
                name: _INDEXED_VALUE_TYPE[SearchAttributeType(kind)]
                for name, kind in desired.items()
                if name not in present
            }
            if missing:
                await operator.add_search_attributes(
                    AddSearchAttributesRequest(namespace=namespace_id, search_attributes=missing)
                )
        except RPCError as error:
            if error.status in (
                RPCStatusCode.INVALID_ARGUMENT,
                RPCStatusCode.FAILED_PRECONDITION,
                RPCStatusCode.ALREADY_EXISTS,
            ):
                raise _aborted(f"the cell refused the search attributes: {error.message}") from None
            raise

    async def _rename_search_attribute(
        self, client: Client, namespace_id: str, old: str, new: str
    ) -> None:
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace_id)
        )
        aliases = described.config.custom_search_attribute_aliases
        column = next((field for field, alias in aliases.items() if alias == old), None)
        if column is None:
            raise _aborted(
                f"the cell's visibility store cannot rename search attribute {old} (it keeps "
                "no aliases, e.g. Elasticsearch): remove it and add it under the new name"
            )
        # The server refuses to re-alias a column in one call ("already allocated"): free the
        # alias, then give the same column the new one.
        for alias in ("", new):
            await client.workflow_service.update_namespace(
                UpdateNamespaceRequest(
                    namespace=namespace_id,
                    config=NamespaceConfig(custom_search_attribute_aliases={column: alias}),
                )
            )

    @activity.defn
    @heartbeats
    async def publish_route(self, namespace_id: str) -> int:
        """Publish the route; returns the route-table version that carries it."""
        try:
            async with self._unit() as session:
                namespace = await self._namespace(session, namespace_id)
                cell = await self._cell_of(session, namespace)
                if not namespace.cell_namespace_id:
                    raise ApplicationError(f"namespace {namespace_id} is not registered yet")
                return await routes.publish(
                    session,
                    RouteEntry(
                        namespace_id=namespace_id,
                        cell_address=cell.address,
                        cell_id=cell.id,
                        accepted_client_ca=namespace.accepted_client_ca,
                        cell_namespace_id=namespace.cell_namespace_id,
                        certificate_filters=namespace.certificate_filters,
                        auth_method=namespace.auth_method,
                        requests_per_second=namespace.requests_per_second,
                        actions_per_second=namespace.actions_per_second,
                        suspended=await routes.suspension_of_account(session, namespace.account_id),
                    ),
                )
        except (IntegrityError, OperationalError, StaleDataError) as error:
            raise ApplicationError(f"route version race, retrying: {error}") from None

    @activity.defn
    async def await_route_propagation(self, version: int, namespace_id: str = "") -> int:
        """Wait until every registered gateway serves ``version`` and, with ``namespace_id``,
        has that namespace's CAs loaded and verified (heartbeating meanwhile). A gateway that
        could not load them fails the operation with its reason in the gateway's log."""
        while True:
            async with self._unit() as session:
                lagging = await routes.lagging_gateways(session, version, namespace_id or None)
                rejecting = (
                    await routes.rejecting_gateways(session, version, namespace_id)
                    if namespace_id
                    else []
                )
            if rejecting:
                raise ApplicationError(
                    f"gateway(s) {', '.join(rejecting)} could not put the client CA bundle of "
                    f"namespace {namespace_id} in force; see the gateway log",
                    non_retryable=True,
                )
            if not lagging:
                return version
            activity.heartbeat(lagging)
            await asyncio.sleep(0.1)

    @activity.defn
    @heartbeats
    async def complete_namespace_create(self, namespace_id: str, operation_id: str) -> str:
        async with self._unit() as session:
            namespace = await self._namespace(session, namespace_id)
            namespace.state = NamespaceState.ACTIVE
            await operations.finish(session, operation_id, OperationState.FULFILLED, None)
        return namespace_id

    @activity.defn
    @heartbeats
    async def complete_namespace_update(self, namespace_id: str, operation_id: str) -> str:
        async with self._unit() as session:
            namespace = await self._namespace(session, namespace_id)
            if namespace.state == NamespaceState.UPDATING:
                namespace.state = NamespaceState.ACTIVE
            await operations.finish(session, operation_id, OperationState.FULFILLED, None)
        return namespace_id

    @activity.defn
    @heartbeats
    async def unpublish_route(self, namespace_id: str) -> int:
        try:
            async with self._unit() as session:
                return await routes.unpublish(session, namespace_id)
        except (IntegrityError, OperationalError, StaleDataError) as error:
            raise ApplicationError(f"route version race, retrying: {error}") from None

    @activity.defn
    @heartbeats
    async def delete_namespace_on_cell(self, namespace_id: str) -> str:
        async with self._unit() as session:
            namespace = await self._namespace(session, namespace_id)
            if namespace.cell_id is None:
                return namespace_id
            cell = await CellRepository(session).get(namespace.cell_id)
            if cell is None:
                return namespace_id
            endpoint = self._endpoint(cell)
        client = await self._cell_client(endpoint)
        try:
            await client.operator_service.delete_namespace(
                DeleteNamespaceRequest(namespace=namespace_id)
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
        return namespace_id

    @activity.defn
    @heartbeats
    async def complete_namespace_delete(self, namespace_id: str, operation_id: str) -> str:
        async with self._unit() as session:
            namespace = await SystemNamespaceRepository(session).get(namespace_id)
            if namespace is not None:
                await SystemNamespaceRepository(session).delete(namespace)
            await operations.finish(session, operation_id, OperationState.FULFILLED, None)
        return namespace_id

    @activity.defn
    @heartbeats
    async def fail_operation(self, operation_id: str, reason: str) -> str:
        async with self._unit() as session:
            operation = await SystemOperationRepository(session).get(operation_id)
            if operation is not None:
                namespace = await SystemNamespaceRepository(session).get(operation.resource_id)
                if namespace is not None:
                    namespace.state = NamespaceState.FAILED
            await operations.finish(session, operation_id, OperationState.FAILED, reason)
        return operation_id

    def all(self) -> list[Callable[..., Awaitable[object]]]:
        """Every step, for the worker's registration."""
        return [
            self.mark_operation_in_progress,
            self.ensure_cell,
            self.register_namespace,
            self.publish_route,
            self.await_route_propagation,
            self.complete_namespace_create,
            self.complete_namespace_update,
            self.unpublish_route,
            self.delete_namespace_on_cell,
            self.complete_namespace_delete,
            self.fail_operation,
        ]
