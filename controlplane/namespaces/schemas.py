from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from auth import AuthMethod
from controlplane.kit.page_schema import PagedList
from controlplane.operations.schemas import AsyncOperationOut
from controlplane.states import NamespaceState, SearchAttributeType

CERTIFICATE_FILTERS_DESCRIPTION = (
    "At most 25 filters; a client certificate is admitted when any filter matches it, and a "
    "filter matches when all of its fields do (case-insensitively). Fields: common_name, "
    "organization, organizational_unit, subject_alternative_name; one '*' allowed as the first "
    "or last character. Empty: every certificate of the accepted CAs."
)


class Lifecycle(BaseModel):
    enable_delete_protection: bool = Field(
        False, description="While true, DELETE is refused (409 delete-protected)"
    )


class CodecServerSpec(BaseModel):
    """A codec server the console's browser sends payloads to (``<endpoint>/decode``); Stratus
    itself never calls it."""

    endpoint: str = Field(description="https URL (http only to localhost/127.0.0.1/::1)")
    pass_access_token: bool = Field(
        False, description="Send the viewer's console access token to the codec server"
    )
    include_cross_origin_credentials: bool = Field(
        False, description="Send the browser's cookies for the codec server's origin"
    )


class Endpoints(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    mtls_address: str = Field(description="Gateway address for mTLS workers")
    server_name: str = Field(description="TLS server name mTLS workers must send")
    api_key_address: str | None = Field(
        description="Gateway address for API-key workers (null: the namespace takes no keys)"
    )
    console_url: str = Field(description="The namespace's page in the web console")


SEARCH_ATTRIBUTES_DESCRIPTION = (
    "Custom search attributes, name -> type (Text, Keyword, Int, Double, Bool, Datetime, "
    "KeywordList). Names: letters, digits, '_', starting with a letter, at most 64, not "
    "reserved by Temporal; per type at most Keyword 10, others 3."
)
TAGS_DESCRIPTION = (
    "Key/value tags: lowercase letters, digits, '-', '_', '.'; keys 1-63, values 0-63 chars; "
    "at most the account's tags_per_namespace quota (default 10)"
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
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    tags: dict[str, str] = Field(default_factory=dict, description=TAGS_DESCRIPTION)
    search_attributes: dict[str, SearchAttributeType] = Field(
        default_factory=dict, description=SEARCH_ATTRIBUTES_DESCRIPTION
    )
    codec_server: CodecServerSpec | None = None
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
    lifecycle: Lifecycle | None = None
    search_attributes: dict[str, SearchAttributeType] | None = Field(
        None, description="Replaces the whole set (after renames). " + SEARCH_ATTRIBUTES_DESCRIPTION
    )
    rename_search_attributes: dict[str, str] | None = Field(
        None,
        description="old name -> new name, applied first; values already stored keep being "
        "found under the new name",
    )
    codec_server: CodecServerSpec | None = Field(
        None, description="Sets the codec server (see remove_codec_server)"
    )
    remove_codec_server: bool = Field(False, description="Removes the codec server")
    async_operation_id: str | None = Field(None, description="Client-chosen id for idempotency")


class NamespaceTagsUpdate(BaseModel):
    """Temporal Cloud's UpdateNamespaceTags: applied at once (tags never reach the cell)."""

    tags_to_upsert: dict[str, str] = Field(default_factory=dict, description=TAGS_DESCRIPTION)
    tags_to_remove: list[str] = Field(default_factory=list)


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
    lifecycle: Lifecycle
    tags: dict[str, str]
    search_attributes: dict[str, SearchAttributeType]
    codec_server: CodecServerSpec | None
    endpoints: Endpoints
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
