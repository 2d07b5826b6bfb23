"""Namespace lifecycle. Writes record the change and an async operation; the workflow started
after commit does the data-plane work (``controlplane.namespaces.workflows``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from cryptography.hazmat.primitives import hashes
from sqlalchemy.ext.asyncio import AsyncSession

from auth import (
    Action,
    AuthMethod,
    CABundle,
    InvalidCABundle,
    InvalidCertificateFilters,
    NamespacePermission,
    Principal,
    Resource,
    authorize,
    parse_ca_bundle,
    parse_certificate_filters,
)
from controlplane.access import service as access
from controlplane.audit import service as audit
from controlplane.cells import service as cells
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.errors import (
    AlreadyExists,
    Conflict,
    InvalidField,
    NotFound,
    QuotaExceeded,
    ResourceVersionMismatch,
)
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import AsyncOperation, Namespace, NamespaceState
from controlplane.models.namespace import NamespaceView
from controlplane.namespaces import spec
from controlplane.namespaces.repository import NamespaceRepository, SystemNamespaceRepository
from controlplane.operations import service as operations
from controlplane.operations.repository import OperationRepository, SystemOperationRepository
from controlplane.operations.starter import OperationStarter
from controlplane.quotas import service as quotas
from controlplane.quotas.limits import Quota
from controlplane.states import CellPlacement
from dataplane.cells import CellProviderKind


class DeleteProtected(Conflict):
    slug = "delete-protected"
    title = "The namespace is protected from deletion"


@dataclass(frozen=True)
class CodecServer:
    endpoint: str
    pass_access_token: bool = False
    include_cross_origin_credentials: bool = False


NAME_RE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 90


def validate_name(name: str) -> None:
    if not 2 <= len(name) <= 39:
        raise InvalidField("name must be 2-39 characters long", field="name")
    if not NAME_RE.fullmatch(name):
        raise InvalidField(
            "name must start with a lowercase letter, contain only lowercase letters, digits "
            "and '-', and end with a letter or digit",
            field="name",
        )
    if "--" in name:
        raise InvalidField("name must not contain '--'", field="name")


def validate_retention(days: int) -> None:
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise InvalidField(
            f"retention_days must be between {MIN_RETENTION_DAYS} and {MAX_RETENTION_DAYS}",
            field="retention_days",
        )


def validate_accepted_client_ca(pem: str) -> CABundle:
    try:
        return parse_ca_bundle(pem)
    except InvalidCABundle as exc:
        raise InvalidField(
            f"accepted_client_ca: {exc.reason}", field="accepted_client_ca"
        ) from None


def validate_certificate_filters(raw: list[dict[str, object]]) -> list[dict[str, str]]:
    """The filters in their stored (and published) form: only the fields that are set."""
    try:
        filters = parse_certificate_filters(raw)
    except InvalidCertificateFilters as exc:
        raise InvalidField(
            f"certificate_filters: {exc.reason}", field="certificate_filters"
        ) from None
    return [certificate_filter.as_dict() for certificate_filter in filters]


async def _visible(repository: NamespaceRepository, namespace_id: str, action: Action) -> Namespace:
    """The namespace, checked against the policy for ``action`` on it: one the caller may not
    even read is not found (as another account's), one it may read but not change is 403."""
    return _checked(repository.principal, await repository.get(namespace_id), namespace_id, action)


_Shown = TypeVar("_Shown", bound=NamespaceView)


def _checked(
    principal: Principal, namespace: _Shown | None, namespace_id: str, action: Action
) -> _Shown:
    if namespace is None or not authorize(
        principal, Action.NAMESPACE_READ, Resource(namespace.account_id, namespace.id)
    ):
        raise NotFound(f"namespace {namespace_id} not found")
    require(
        principal,
        action,
        Resource(namespace.account_id, namespace.id),
        refusal=f"this credential may not perform {action.value} on {namespace_id}",
    )
    return namespace


async def create(
    session: AsyncSession,
    principal: Principal,
    starter: OperationStarter,
    *,
    name: str,
    retention_days: int,
    accepted_client_ca: str,
    certificate_filters: list[dict[str, object]],
    async_operation_id: str | None,
    auth_method: AuthMethod = AuthMethod.MTLS,
    placement: CellPlacement = CellPlacement.DEDICATED,
    provider: CellProviderKind = CellProviderKind.LOCAL,
    delete_protection: bool = False,
    tags: Mapping[str, str] | None = None,
    search_attributes: Mapping[str, str] | None = None,
    codec_server: CodecServer | None = None,
) -> tuple[Namespace, AsyncOperation]:
    require(principal, Action.NAMESPACE_CREATE)
    repository = NamespaceRepository(session, principal)
    account_id = repository.account_id
    validate_name(name)
    validate_retention(retention_days)
    # Only the canonical bundle is stored: what the tenant sent never reaches a TLS stack.
    bundle = validate_accepted_client_ca(accepted_client_ca)
    filters = validate_certificate_filters(certificate_filters)
    valid_tags = spec.validate_tags(tags or {})
    attributes = spec.validate_search_attributes(search_attributes or {})
    codec = _codec(codec_server)
    namespace_id = f"{name}.{account_id}"
    existing = await operations.retried(
        session, principal, async_operation_id, "namespace.create", namespace_id
    )
    if existing is not None:
        retried = await repository.get(namespace_id)
        if retried is None:  # created, then deleted: the id cannot be reused
            raise Conflict("async_operation_id is already in use", field="async_operation_id")
        return retried, existing
    if await repository.get(namespace_id) is not None:
        raise AlreadyExists(f"namespace {namespace_id} already exists", field="name")
    await quotas.enforce(session, account_id, Quota.NAMESPACES)
    await quotas.enforce(session, account_id, Quota.CONCURRENT_OPERATIONS)
    await _enforce_tag_quota(session, account_id, len(valid_tags))
    namespace = Namespace(
        id=namespace_id,
        account_id=account_id,
        name=name,
        retention_days=retention_days,
        accepted_client_ca=bundle.pem,
        certificate_filters=filters,
        state=NamespaceState.ACTIVATING,
        resource_version=str(uuid.uuid4()),
        auth_method=auth_method,
        delete_protection=delete_protection,
        tags=valid_tags,
        search_attributes=attributes,
        search_attribute_pending={},
        codec_server=codec,
    )
    repository.add(namespace)
    # Last of the checks: it locks the chosen cell until this transaction commits.
    await cells.place(session, namespace, placement, provider=provider)
    operation = operations.create(
        OperationRepository(session, principal),
        starter,
        account_id=account_id,
        operation_type="namespace.create",
        resource_id=namespace_id,
        operation_id=async_operation_id,
    )
    audit.record(
        session,
        principal,
        action="namespace.create",
        target=namespace_id,
        account_id=account_id,
        details={
            "retention_days": retention_days,
            "certificate_filters": filters,
            "delete_protection": delete_protection,
            "tags": valid_tags,
            "search_attributes": attributes,
            "codec_server": codec,
            "async_operation_id": operation.async_operation_id,
        },
    )
    await session.flush()
    if not authorize(principal, Action.NAMESPACE_UPDATE, Resource.whole_account(account_id)):
        # As in Temporal Cloud, a developer administers the namespaces it creates.
        await access.grant(
            session, principal, namespace, principal.kind, principal.id, NamespacePermission.ADMIN
        )
    return namespace, operation


async def update(
    session: AsyncSession,
    principal: Principal,
    starter: OperationStarter,
    *,
    namespace_id: str,
    resource_version: str,
    retention_days: int | None,
    accepted_client_ca: str | None,
    certificate_filters: list[dict[str, object]] | None,
    async_operation_id: str | None,
    auth_method: AuthMethod | None = None,
    delete_protection: bool | None = None,
    search_attributes: Mapping[str, str] | None = None,
    rename_search_attributes: Mapping[str, str] | None = None,
    codec_server: CodecServer | None = None,
    remove_codec_server: bool = False,
) -> tuple[Namespace, AsyncOperation]:
    """Change the namespace's retention, accepted client CAs, certificate filters, auth
    method, delete protection, custom search attributes (renames first, then
    ``search_attributes`` is the whole set) and/or codec server; the fields left out (None)
    keep their value. The row changes at once (state UPDATING, new
    resource_version); the operation applies it to the cell and the gateways."""
    require(principal, Action.NAMESPACE_UPDATE)
    repository = NamespaceRepository(session, principal)
    account_id = repository.account_id
    namespace = await _visible(repository, namespace_id, Action.NAMESPACE_UPDATE)
    existing = await operations.retried(
        session, principal, async_operation_id, "namespace.update", namespace_id
    )
    if existing is not None:
        return namespace, existing
    changes: dict[str, object] = {}
    if retention_days is not None:
        validate_retention(retention_days)
        changes["retention_days"] = retention_days
    bundle = None
    if accepted_client_ca is not None:
        bundle = validate_accepted_client_ca(accepted_client_ca)
    filters = None
    if certificate_filters is not None:
        filters = validate_certificate_filters(certificate_filters)
        changes["certificate_filters"] = filters
    if auth_method is not None:
        changes["auth_method"] = auth_method.value
    if delete_protection is not None:
        changes["delete_protection"] = delete_protection
    plan = None
    if search_attributes is not None or rename_search_attributes:
        plan = spec.plan_search_attributes(
            namespace.search_attributes, search_attributes, rename_search_attributes or {}
        )
        changes["search_attributes"] = plan[0]
        if plan[1]:
            changes["renamed_search_attributes"] = plan[1]
        if plan[2]:
            changes["removed_search_attributes"] = plan[2]
    codec = None
    if codec_server is not None:
        codec = _codec(codec_server)
        changes["codec_server"] = codec
    elif remove_codec_server:
        changes["codec_server"] = None
    if resource_version != namespace.resource_version:
        raise ResourceVersionMismatch(
            f"namespace {namespace_id} is at resource_version {namespace.resource_version}",
            field="resource_version",
        )
    if namespace.state != NamespaceState.ACTIVE:
        raise Conflict(
            f"namespace {namespace_id} is {namespace.state.value}; only an ACTIVE namespace "
            "can be updated",
            field="state",
        )
    await quotas.enforce(session, account_id, Quota.CONCURRENT_OPERATIONS)
    if auth_method is not None:
        namespace.auth_method = auth_method
    if retention_days is not None:
        namespace.retention_days = retention_days
    if bundle is not None:
        namespace.accepted_client_ca = bundle.pem
        # The audit trail names the CAs by fingerprint; the PEM stays on the namespace.
        changes["accepted_client_ca_sha256"] = [
            certificate.fingerprint(hashes.SHA256()).hex() for certificate in bundle.certificates
        ]
    if filters is not None:
        namespace.certificate_filters = filters
    if delete_protection is not None:
        namespace.delete_protection = delete_protection
    if plan is not None:
        namespace.search_attributes = plan[0]
        namespace.search_attribute_pending = {"rename": plan[1], "remove": plan[2]}
    if codec is not None or remove_codec_server:
        namespace.codec_server = codec
    namespace.state = NamespaceState.UPDATING
    namespace.resource_version = str(uuid.uuid4())
    operation = operations.create(
        OperationRepository(session, principal),
        starter,
        account_id=account_id,
        operation_type="namespace.update",
        resource_id=namespace_id,
        operation_id=async_operation_id,
    )
    audit.record(
        session,
        principal,
        action="namespace.update",
        target=namespace_id,
        account_id=account_id,
        details={**changes, "async_operation_id": operation.async_operation_id},
    )
    await session.flush()
    return namespace, operation


MIN_RATE_LIMIT, MAX_RATE_LIMIT = 1, 100_000


async def set_limits(
    session: AsyncSession,
    principal: Principal,
    starter: OperationStarter,
    *,
    namespace_id: str,
    requests_per_second: int,
    actions_per_second: int,
    async_operation_id: str | None,
) -> tuple[Namespace, AsyncOperation]:
    """Operator only: change a namespace's gateway rate limits (applied as an update)."""
    require(
        principal,
        Action.NAMESPACE_LIMITS_SET,
        refusal="only the operator may change a namespace's rate limits",
    )
    for field, value in (
        ("requests_per_second", requests_per_second),
        ("actions_per_second", actions_per_second),
    ):
        if not MIN_RATE_LIMIT <= value <= MAX_RATE_LIMIT:
            raise InvalidField(
                f"{field} must be between {MIN_RATE_LIMIT} and {MAX_RATE_LIMIT}", field=field
            )
    if async_operation_id is not None:
        operations.validate_operation_id(async_operation_id)
    # The operator acts across accounts: no tenant scoping here, by design.
    namespace = await SystemNamespaceRepository(session).get(namespace_id)
    if namespace is None:
        raise NotFound(f"namespace {namespace_id} not found")
    if namespace.state != NamespaceState.ACTIVE:
        raise Conflict(
            f"namespace {namespace_id} is {namespace.state.value}; only an ACTIVE namespace "
            "can be updated",
            field="state",
        )
    namespace.requests_per_second = requests_per_second
    namespace.actions_per_second = actions_per_second
    namespace.state = NamespaceState.UPDATING
    namespace.resource_version = str(uuid.uuid4())
    operation = operations.create(
        SystemOperationRepository(session),
        starter,
        account_id=namespace.account_id,
        operation_type="namespace.update",
        resource_id=namespace_id,
        operation_id=async_operation_id,
    )
    audit.record(
        session,
        principal,
        action="namespace.limits.set",
        target=namespace_id,
        account_id=namespace.account_id,
        details={
            "requests_per_second": requests_per_second,
            "actions_per_second": actions_per_second,
            "async_operation_id": operation.async_operation_id,
        },
    )
    await session.flush()
    return namespace, operation


async def get(session: AsyncSession, principal: Principal, namespace_id: str) -> Namespace:
    require(principal, Action.NAMESPACE_READ)
    return await _visible(
        NamespaceRepository(session, principal), namespace_id, Action.NAMESPACE_READ
    )


async def view(session: AsyncSession, principal: Principal, namespace_id: str) -> NamespaceView:
    """:func:`get`, to show the namespace: its columns, without loading an ORM entity."""
    require(principal, Action.NAMESPACE_READ)
    namespace = await NamespaceRepository(session, principal).view(namespace_id)
    return _checked(principal, namespace, namespace_id, Action.NAMESPACE_READ)


async def list_all(
    session: AsyncSession, principal: Principal, *, tag: str | None = None
) -> list[Namespace]:
    """The namespaces the caller may read, by name; ``tag`` ("key:value") keeps those with
    that tag."""
    require(principal, Action.NAMESPACE_READ)
    wanted = spec.parse_tag_filter(tag) if tag is not None else None
    namespaces = await NamespaceRepository(session, principal).list_readable()
    if wanted is None:
        return namespaces
    key, value = wanted
    return [namespace for namespace in namespaces if namespace.tags.get(key) == value]


async def update_tags(
    session: AsyncSession,
    principal: Principal,
    *,
    namespace_id: str,
    upsert: Mapping[str, str],
    remove: list[str],
) -> Namespace:
    """Set and remove tags (Temporal Cloud's UpdateNamespaceTags). Tags live in the control
    plane only, so this takes effect at once: no operation, no resource_version."""
    require(principal, Action.NAMESPACE_UPDATE)
    repository = NamespaceRepository(session, principal)
    namespace = await _visible(repository, namespace_id, Action.NAMESPACE_UPDATE)
    upsert = spec.validate_tags(upsert, field="tags_to_upsert")
    for key in remove:
        spec.validate_tags({key: ""}, field="tags_to_remove")
        if key in upsert:
            raise InvalidField(
                f"tag {key!r} is both set and removed; do one", field="tags_to_remove"
            )
    if not upsert and not remove:
        raise InvalidField("give tags_to_upsert and/or tags_to_remove", field="tags_to_upsert")
    tags = {key: value for key, value in namespace.tags.items() if key not in remove}
    tags.update(upsert)
    added = len(set(tags) - set(namespace.tags))
    if added:
        await _enforce_tag_quota(session, repository.account_id, len(tags))
    namespace.tags = dict(sorted(tags.items()))
    audit.record(
        session,
        principal,
        action="namespace.tags.update",
        target=namespace_id,
        account_id=repository.account_id,
        details={"tags_to_upsert": upsert, "tags_to_remove": sorted(remove)},
    )
    await session.flush()
    return namespace


async def _enforce_tag_quota(session: AsyncSession, account_id: str, count: int) -> None:
    limit = await quotas.limit(session, account_id, Quota.TAGS_PER_NAMESPACE)
    if count > limit:
        raise QuotaExceeded(
            f"quota {Quota.TAGS_PER_NAMESPACE.value} exceeded: the namespace would have "
            f"{count} tags and the limit is {limit}; remove one or ask the operator to raise "
            "the quota",
            quota=Quota.TAGS_PER_NAMESPACE.value,
            limit=limit,
            usage=count,
        )


def _codec(codec_server: CodecServer | None) -> dict[str, object] | None:
    if codec_server is None:
        return None
    return spec.validate_codec_server(
        codec_server.endpoint,
        codec_server.pass_access_token,
        codec_server.include_cross_origin_credentials,
    )


async def page(
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    *,
    name: str | None = None,
    tag: str | None = None,
) -> Page[Namespace]:
    """A page of the namespaces the caller may read, by name; ``name`` keeps those whose name
    starts with it (case-insensitive: names are stored lowercase), ``tag`` ("key:value") those
    with that tag."""
    require(principal, Action.NAMESPACE_READ)
    prefix = fields.free_text(name, field="name", max_length=39).lower() if name else None
    wanted = spec.parse_tag_filter(tag) if tag is not None else None
    return await NamespaceRepository(session, principal).page_readable(
        page, name=prefix or None, tag=wanted
    )


async def list_page(
    session: AsyncSession, principal: Principal, *, offset: int, limit: int
) -> tuple[list[Namespace], int]:
    """One page of the namespaces the caller may read (by name) and how many there are."""
    require(principal, Action.NAMESPACE_READ)
    return await NamespaceRepository(session, principal).readable_page(offset=offset, limit=limit)


async def delete(
    session: AsyncSession,
    principal: Principal,
    starter: OperationStarter,
    *,
    namespace_id: str,
    resource_version: str | None,
    async_operation_id: str | None,
    override_delete_protection: bool = False,
) -> tuple[Namespace, AsyncOperation]:
    """Start deleting a namespace. Delete protection refuses it (409) unless
    ``override_delete_protection``: only the operator's deletion of the whole account sets it
    (an account being deleted must not stay stuck on one protected namespace)."""
    require(principal, Action.NAMESPACE_DELETE)
    repository = NamespaceRepository(session, principal)
    account_id = repository.account_id
    namespace = await _visible(repository, namespace_id, Action.NAMESPACE_DELETE)
    existing = await operations.retried(
        session, principal, async_operation_id, "namespace.delete", namespace_id
    )
    if existing is not None:
        return namespace, existing
    if resource_version is not None and resource_version != namespace.resource_version:
        raise ResourceVersionMismatch(
            f"namespace {namespace_id} is at resource_version {namespace.resource_version}",
            field="resource_version",
        )
    if namespace.delete_protection and not override_delete_protection:
        raise DeleteProtected(
            f"namespace {namespace_id} has delete protection on; turn it off first "
            "(update it with lifecycle.enable_delete_protection=false, or `stratus namespace "
            f"delete-protection disable --namespace {namespace_id}`), then delete it",
            field="lifecycle.enable_delete_protection",
        )
    if namespace.state not in (NamespaceState.ACTIVE, NamespaceState.FAILED):
        raise Conflict(
            f"namespace {namespace_id} is {namespace.state.value}; wait for its operation to end",
            field="state",
        )
    await quotas.enforce(session, account_id, Quota.CONCURRENT_OPERATIONS)
    namespace.state = NamespaceState.DELETING
    namespace.resource_version = str(uuid.uuid4())
    operation = operations.create(
        OperationRepository(session, principal),
        starter,
        account_id=account_id,
        operation_type="namespace.delete",
        resource_id=namespace_id,
        operation_id=async_operation_id,
    )
    audit.record(
        session,
        principal,
        action="namespace.delete",
        target=namespace_id,
        account_id=account_id,
        details={"async_operation_id": operation.async_operation_id},
    )
    await session.flush()
    return namespace, operation


async def of_account(
    session: AsyncSession, principal: Principal, account_id: str
) -> list[Namespace]:
    """Operator only: an account's namespaces (to set their rate limits)."""
    require(principal, Action.ACCOUNT_READ, refusal="only the operator may read any account")
    # The operator acts across accounts: no tenant scoping here, by design.
    return await SystemNamespaceRepository(session).list_for_account(account_id)


async def get_any(session: AsyncSession, principal: Principal, namespace_id: str) -> Namespace:
    """Operator only: any account's namespace."""
    require(principal, Action.ACCOUNT_READ, refusal="only the operator may read any account")
    namespace = await SystemNamespaceRepository(session).get(namespace_id)
    if namespace is None:
        raise NotFound(f"namespace {namespace_id} not found")
    return namespace
