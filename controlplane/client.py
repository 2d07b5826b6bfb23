"""Typed Python client for the Stratus admin API (what the ``stratus`` CLI uses)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from controlplane.accounts.schemas import AccountCreate, AccountCreated
from controlplane.namespaces.schemas import (
    NamespaceCreate,
    NamespaceList,
    NamespaceOperation,
    NamespaceOut,
    NamespaceUpdate,
)
from controlplane.operations.schemas import AsyncOperationOut

M = TypeVar("M", bound=BaseModel)
TERMINAL_STATES = frozenset({"FULFILLED", "FAILED"})


class StratusAPIError(Exception):
    """A problem+json answer from the API."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.type = str(problem.get("type", ""))
        self.detail = str(problem.get("detail", problem.get("title", "error")))
        self.field = problem.get("field")
        super().__init__(f"{status} {self.detail}")


class StratusClient:
    def __init__(
        self,
        api_url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(
            base_url=api_url.rstrip("/") + "/api/v1",
            headers=headers,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StratusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(
        self, model: type[M], method: str, path: str, *, json: Any = None, params: Any = None
    ) -> M:
        response = self._http.request(method, path, json=json, params=params)
        if response.is_error:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text or response.reason_phrase}
            raise StratusAPIError(response.status_code, problem)
        return model.model_validate(response.json())

    def create_account(self, name: str, owner_email: str) -> AccountCreated:
        body = AccountCreate(name=name, owner_email=owner_email)
        return self._call(AccountCreated, "POST", "/accounts", json=body.model_dump())

    def create_namespace(
        self,
        name: str,
        accepted_client_ca: str,
        *,
        retention_days: int = 30,
        certificate_filters: list[dict[str, object]] | None = None,
        async_operation_id: str | None = None,
    ) -> NamespaceOperation:
        body = NamespaceCreate(
            name=name,
            retention_days=retention_days,
            accepted_client_ca=accepted_client_ca,
            certificate_filters=certificate_filters or [],
            async_operation_id=async_operation_id,
        )
        return self._call(
            NamespaceOperation, "POST", "/namespaces", json=body.model_dump(exclude_none=True)
        )

    def list_namespaces(self) -> NamespaceList:
        return self._call(NamespaceList, "GET", "/namespaces")

    def get_namespace(self, namespace_id: str) -> NamespaceOut:
        return self._call(NamespaceOut, "GET", f"/namespaces/{namespace_id}")

    def update_namespace(
        self,
        namespace_id: str,
        *,
        resource_version: str,
        retention_days: int | None = None,
        accepted_client_ca: str | None = None,
        certificate_filters: list[dict[str, object]] | None = None,
        async_operation_id: str | None = None,
    ) -> NamespaceOperation:
        """Change what is given (None keeps the value; ``[]`` clears the filters).
        ``resource_version`` is the one last read: a concurrent change makes this a 409."""
        body = NamespaceUpdate(
            resource_version=resource_version,
            retention_days=retention_days,
            accepted_client_ca=accepted_client_ca,
            certificate_filters=certificate_filters,
            async_operation_id=async_operation_id,
        )
        return self._call(
            NamespaceOperation,
            "POST",
            f"/namespaces/{namespace_id}",
            json=body.model_dump(exclude_none=True),
        )

    def delete_namespace(
        self, namespace_id: str, *, resource_version: str | None = None
    ) -> NamespaceOperation:
        params = {"resource_version": resource_version} if resource_version else None
        return self._call(
            NamespaceOperation, "DELETE", f"/namespaces/{namespace_id}", params=params
        )

    def get_operation(self, operation_id: str) -> AsyncOperationOut:
        return self._call(AsyncOperationOut, "GET", f"/operations/{operation_id}")

    def wait_for_operation(
        self,
        operation_id: str,
        *,
        timeout: float = 300.0,
        interval: float = 0.25,
        on_change: Callable[[AsyncOperationOut], None] | None = None,
    ) -> AsyncOperationOut:
        """Poll until FULFILLED or FAILED; ``on_change`` sees every state transition."""
        deadline = time.monotonic() + timeout
        last_state = None
        while True:
            operation = self.get_operation(operation_id)
            if operation.state != last_state:
                last_state = operation.state
                if on_change is not None:
                    on_change(operation)
            if operation.state in TERMINAL_STATES:
                return operation
            if time.monotonic() > deadline:
                raise TimeoutError(f"operation {operation_id} still {operation.state}")
            time.sleep(interval)
