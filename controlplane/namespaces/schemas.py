from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from auth import AuthMethod
from controlplane.kit.page_schema import PagedList
from controlplane.operations.schemas import AsyncOperationOut
from controlplane.states import NamespaceState

CERTIFICATE_FILTERS_DESCRIPTION = (
    "At most 25 filters; a client certificate is admitted when any filter matches it, and a "
    "filter matches when all of its fields do (case-insensitively). Fields: common_name, "
    "organization, organizational_unit, subject_alternative_name; one '*' allowed as the first "
    "or last character. Empty: every certificate of the accepted CAs."
)


class NamespaceCreate(BaseModel):
    name: str = Field(description="2-39 chars, ^[a-z][a-z0-9-]*[a-z0-9]$, no '--'")
    retention_days: int = Field(30, description="Closed-workflow retention, 1-90 days")
    accepted_client_ca: str = Field(description="PEM bundle of CA certificates for mTLS clients")
    certificate_filters: list[dict[str, object]] = Field(
        default_factory=list, description=CERTIFICATE_FILTERS_DESCRIPTION
    )
    auth_method: AuthMethod = Field(
        AuthMethod.MTLS, description="How SDK clients authenticate at the gateway"
    )
    async_operation_id: str | None = Field(None, description="Client-chosen id for idempotency")


class NamespaceUpdate(BaseModel):
    """A partial update: fields left out keep their value."""

    resource_version: str = Field(description="The namespace's resource_version as last read")
    retention_days: int | None = Field(None, description="Closed-workflow retention, 1-90 days")
    accepted_client_ca: str | None = Field(
        None, description="Replaces the PEM bundle of CA certificates for mTLS clients"
    )
    certificate_filters: list[dict[str, object]] | None = Field(
        None, description="Replaces the filters. " + CERTIFICATE_FILTERS_DESCRIPTION
    )
    auth_method: AuthMethod | None = Field(
        None, description="How SDK clients authenticate at the gateway"
    )
    async_operation_id: str | None = Field(None, description="Client-chosen id for idempotency")


class NamespaceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    account_id: str
    retention_days: int
    accepted_client_ca: str
    certificate_filters: list[dict[str, str]]
    auth_method: AuthMethod = Field(description="How SDK clients authenticate at the gateway")
    requests_per_second: int = Field(description="Rate limit enforced by the gateway (RPS)")
    actions_per_second: int = Field(description="Rate limit enforced by the gateway (APS)")
    state: NamespaceState
    resource_version: str
    created_at: dt.datetime
    updated_at: dt.datetime


class NamespaceLimits(BaseModel):
    requests_per_second: int = Field(description="1-100000")
    actions_per_second: int = Field(description="1-100000")
    async_operation_id: str | None = None


class NamespaceOperation(BaseModel):
    namespace: NamespaceOut
    async_operation: AsyncOperationOut


class NamespaceList(PagedList):
    namespaces: list[NamespaceOut]
