"""Namespace pages: list (live state), create (CA upload), detail (live state and latest
operation, endpoints, SDK snippets, CAs, limits), settings (retention, auth method,
certificate filters), CA add/remove, delete. Every read and write goes through
``controlplane.namespaces.service``, as the API's endpoints do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields
from typing import Annotated, TypedDict
from urllib.parse import urlencode

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import RedirectResponse

from auth import Action, AuthMethod, CertificateFilter, Resource, parse_ca_bundle
from controlplane.api.deps import StarterDep
from controlplane.config import ApiSettings
from controlplane.console._session import CurrentViewer
from controlplane.console._templates import render
from controlplane.kit.authorization import require
from controlplane.kit.deps import SessionDep, SettingsDep
from controlplane.kit.errors import (
    Forbidden,
    InvalidField,
    NotFound,
    ResourceVersionMismatch,
    StratusError,
)
from controlplane.models import AsyncOperation, Namespace, NamespaceState, OperationState
from controlplane.namespaces import service, spec
from controlplane.operations import service as operations

router = APIRouter(include_in_schema=False)

# A CA bundle is small (the API caps it far below the body limit); more is refused unread.
MAX_CA_FILE_BYTES = 64 * 1024
# The namespace list shows this many rows a page (at most MAX_PAGE_SIZE when asked).
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
MAX_PAGES = 1_000_000
# States after which nothing changes without a user's action: the list stops polling.
FINAL_STATES = frozenset({NamespaceState.ACTIVE, NamespaceState.FAILED})
FINAL_OPERATION_STATES = frozenset({OperationState.FULFILLED, OperationState.FAILED})
# The longest ``shown`` a status poll echoes back (a state and a resource version are far less).
MAX_SHOWN = 100
# The filter fields as the settings form names them (one input of each per filter row).
FILTER_INPUTS = {
    "common_name": "filter_cn",
    "organization": "filter_o",
    "organizational_unit": "filter_ou",
    "subject_alternative_name": "filter_san",
}
assert set(FILTER_INPUTS) == {field.name for field in fields(CertificateFilter)}
STALE_FORM = (
    "This namespace changed since you loaded the page (someone else saved it, or an operation "
    "finished). The page now shows its current settings: check them and make your change again."
)


@dataclass(frozen=True)
class CaRow:
    subject: str
    fingerprint: str
    not_after: str


def _cas(namespace: Namespace) -> list[CaRow]:
    if not namespace.accepted_client_ca.strip():
        return []
    bundle = parse_ca_bundle(namespace.accepted_client_ca)
    return [
        CaRow(
            subject=certificate.subject.rfc4514_string(),
            fingerprint=certificate.fingerprint(hashes.SHA256()).hex(),
            not_after=certificate.not_valid_after_utc.strftime("%Y-%m-%d"),
        )
        for certificate in bundle.certificates
    ]


async def _read_ca(upload: UploadFile | None, pasted: str) -> str:
    if upload is not None and upload.filename:
        data = await upload.read(MAX_CA_FILE_BYTES + 1)
        if len(data) > MAX_CA_FILE_BYTES:
            raise InvalidField(
                f"the CA file is larger than {MAX_CA_FILE_BYTES // 1024} KiB",
                field="accepted_client_ca",
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidField(
                "the CA file is not PEM text (BEGIN CERTIFICATE blocks)",
                field="accepted_client_ca",
            ) from None
    return pasted


def _any_pending(namespaces: list[Namespace]) -> bool:
    return any(namespace.state not in FINAL_STATES for namespace in namespaces)


@dataclass(frozen=True)
class NamespacePage:
    """One page of the namespace list: its rows, where it sits, and its neighbours' links."""

    namespaces: list[Namespace]
    total: int
    first: int
    page_size: int
    rows_url: str
    previous_url: str | None
    next_url: str | None

    @property
    def last(self) -> int:
        return self.first + len(self.namespaces) - 1


def _list_url(path: str, page: int, page_size: int) -> str:
    params = {"page": page} if page > 1 else {}
    if page_size != DEFAULT_PAGE_SIZE:
        params["page_size"] = page_size
    return f"{path}?{urlencode(params)}" if params else path


async def _page(
    session: SessionDep, viewer: CurrentViewer, page_text: str, page_size_text: str
) -> NamespacePage:
    """A page of the list: the account may hold thousands of namespaces, and rendering (and
    polling) them all at once grows with the account, so the list shows ``page_size``."""
    page = _whole(page_text, "page", MAX_PAGES)
    page_size = _whole(page_size_text, "page_size", MAX_PAGE_SIZE)
    namespaces, total = await service.list_page(
        session, viewer.principal, offset=(page - 1) * page_size, limit=page_size
    )
    return NamespacePage(
        namespaces=namespaces,
        total=total,
        first=(page - 1) * page_size + 1,
        page_size=page_size,
        rows_url=_list_url("/namespaces/rows", page, page_size),
        previous_url=_list_url("/namespaces", page - 1, page_size) if page > 1 else None,
        next_url=(
            _list_url("/namespaces", page + 1, page_size) if page * page_size < total else None
        ),
    )


def _whole(value: str, name: str, highest: int) -> int:
    """A page parameter from the address bar: a whole number from 1 to ``highest``."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= highest:
        raise InvalidField(f"{name} must be a whole number from 1 to {highest:,}", field=name)
    return number


_Page = Annotated[str, Query(max_length=16)]


@router.get("/namespaces")
async def namespace_list(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    page: _Page = "1",
    page_size: _Page = str(DEFAULT_PAGE_SIZE),
) -> Response:
    listing = await _page(session, viewer, page, page_size)
    return render(
        request,
        "namespaces.html",
        listing=listing,
        polling=_any_pending(listing.namespaces),
        may_create=viewer.may(Action.NAMESPACE_CREATE),
    )


@router.get("/namespaces/rows")
async def namespace_rows(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    page: _Page = "1",
    page_size: _Page = str(DEFAULT_PAGE_SIZE),
) -> Response:
    """The list's table body (the page shown), polled by htmx while one of its namespaces is
    still changing."""
    listing = await _page(session, viewer, page, page_size)
    return render(
        request,
        "_namespace_rows.html",
        listing=listing,
        polling=_any_pending(listing.namespaces),
    )


def _new_form(
    request: Request,
    viewer: CurrentViewer,
    *,
    values: dict[str, str],
    error: StratusError | None = None,
) -> Response:
    return render(
        request,
        "namespace_new.html",
        status_code=error.status if error else 200,
        values=values,
        error=error,
        auth_methods=list(AuthMethod),
        may_create=viewer.may(Action.NAMESPACE_CREATE),
    )


@router.get("/namespaces/new")
async def namespace_new(request: Request, viewer: CurrentViewer) -> Response:
    values = {"name": "", "retention_days": "30", "auth_method": AuthMethod.MTLS.value, "ca": ""}
    return _new_form(request, viewer, values=values)


@router.post("/namespaces")
async def namespace_create(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    starter: StarterDep,
    settings: SettingsDep,
    name: Annotated[str, Form()] = "",
    retention_days: Annotated[str, Form()] = "30",
    auth_method: Annotated[str, Form()] = AuthMethod.MTLS.value,
    accepted_client_ca: Annotated[str, Form()] = "",
    ca_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    values = {
        "name": name,
        "retention_days": retention_days,
        "auth_method": auth_method,
        "ca": accepted_client_ca,
    }
    try:
        try:
            days = int(retention_days)
        except ValueError:
            raise InvalidField(
                "retention must be a whole number of days", field="retention_days"
            ) from None
        try:
            method = AuthMethod(auth_method)
        except ValueError:
            raise InvalidField("choose an authentication method", field="auth_method") from None
        namespace, _ = await service.create(
            session,
            viewer.principal,
            starter,
            name=name.strip().lower(),
            retention_days=days,
            accepted_client_ca=await _read_ca(ca_file, accepted_client_ca),
            certificate_filters=[],
            async_operation_id=None,
            auth_method=method,
            placement=settings.cell_placement,
        )
    except InvalidField as invalid:
        await session.rollback()
        return _new_form(request, viewer, values=values, error=invalid)
    except StratusError as refused:
        if refused.status in (401, 403, 404):
            raise
        await session.rollback()
        return _new_form(request, viewer, values=values, error=refused)
    return RedirectResponse(f"/namespaces/{namespace.id}", status_code=303)


async def _latest_operation(
    session: SessionDep, viewer: CurrentViewer, namespace: Namespace
) -> AsyncOperation | None:
    """The namespace's newest operation, if the viewer may read operations."""
    try:
        return await operations.latest_for(session, viewer.principal, namespace.id)
    except Forbidden:
        return None


def _shown(namespace: Namespace) -> str:
    """The namespace as a page shows it: its forms and controls change only with its state or
    its resource_version (which every change of its settings renews)."""
    return f"{namespace.state.value}:{namespace.resource_version}"


def _final(namespace: Namespace, operation: AsyncOperation | None) -> bool:
    """Whether nothing changes any more without a user's action (the status stops polling)."""
    return namespace.state in FINAL_STATES and (
        operation is None or operation.state in FINAL_OPERATION_STATES
    )


def _filter_rows(namespace: Namespace) -> list[dict[str, str]]:
    """The stored filters and one empty row to add a filter with."""
    return [*namespace.certificate_filters, {}]


async def _detail(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    settings: ApiSettings,
    namespace: Namespace,
    *,
    template: str = "namespace_detail.html",
    error: StratusError | None = None,
    values: dict[str, object] | None = None,
) -> Response:
    resource = Resource(namespace.account_id, namespace.id)
    operation = await _latest_operation(session, viewer, namespace)
    return render(
        request,
        template,
        status_code=error.status if error else 200,
        namespace=namespace,
        operation=operation,
        cas=_cas(namespace),
        endpoints=spec.endpoints(settings, namespace),
        may_update=viewer.may(Action.NAMESPACE_UPDATE, resource),
        may_delete=viewer.may(Action.NAMESPACE_DELETE, resource),
        may_browse=viewer.may(Action.NAMESPACE_DATA_READ, resource),
        final=_final(namespace, operation),
        shown=_shown(namespace),
        stale=False,
        editable=namespace.state == NamespaceState.ACTIVE,
        auth_methods=list(AuthMethod),
        filter_inputs=FILTER_INPUTS,
        values=values
        or {
            "retention_days": str(namespace.retention_days),
            "auth_method": namespace.auth_method.value,
            "filters": _filter_rows(namespace),
            "delete_protection": namespace.delete_protection,
        },
        error=error,
    )


@router.get("/namespaces/{namespace_id}")
async def namespace_detail(
    request: Request,
    namespace_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    namespace = await service.get(session, viewer.principal, namespace_id)
    return await _detail(request, viewer, session, settings, namespace)


@router.get("/namespaces/{namespace_id}/live")
async def namespace_detail_live(
    request: Request,
    namespace_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    settings: SettingsDep,
) -> Response:
    """The detail page's body, which console.js reloads once the status shows the namespace
    changed under the page (and no form on it holds unsaved input)."""
    try:
        namespace = await service.get(session, viewer.principal, namespace_id)
    except NotFound:
        # Deleted while the page polled (or never visible: the same answer): htmx leaves the
        # page for the list instead of polling a 404 forever.
        return Response(status_code=404, headers={"HX-Redirect": "/namespaces"})
    return await _detail(
        request, viewer, session, settings, namespace, template="_namespace_detail_body.html"
    )


@router.get("/namespaces/{namespace_id}/status")
async def namespace_status(
    request: Request,
    namespace_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    shown: str = "",
) -> Response:
    """The detail page's status section, polled by htmx while the namespace or its latest
    operation is still changing (it stops polling once both are final). ``shown`` is the
    namespace as the rest of the page shows it: when it differs, the page is marked stale."""
    try:
        namespace = await service.get(session, viewer.principal, namespace_id)
    except NotFound:
        return Response(status_code=404, headers={"HX-Redirect": "/namespaces"})
    operation = await _latest_operation(session, viewer, namespace)
    current = _shown(namespace)
    page = shown[:MAX_SHOWN] if shown else current
    return render(
        request,
        "_namespace_status.html",
        namespace=namespace,
        operation=operation,
        final=_final(namespace, operation),
        shown=page,
        stale=page != current,
    )


class NamespaceChange(TypedDict, total=False):
    """What an edit asks ``service.update`` for; a field left out keeps its value."""

    retention_days: int
    auth_method: AuthMethod
    accepted_client_ca: str
    certificate_filters: list[dict[str, object]]
    delete_protection: bool


# Computes the change from the namespace as it is now (None: nothing to change).
Change = Callable[[Namespace], Awaitable[NamespaceChange | None]]


async def _apply(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    starter: StarterDep,
    settings: ApiSettings,
    namespace_id: str,
    resource_version: str,
    change: Change,
    *,
    values: dict[str, object] | None = None,
) -> Response:
    """Load the namespace (another account's is not found), compute the change, apply it
    through ``service.update`` (which authorizes, checks the resource_version and audits),
    then redirect to the detail page, or show it again with the error next to its field."""
    namespace = await service.get(session, viewer.principal, namespace_id)
    # The policy first: a caller who may not update is refused even when nothing would change.
    require(
        viewer.principal,
        Action.NAMESPACE_UPDATE,
        Resource(namespace.account_id, namespace.id),
        refusal=f"this credential may not perform namespace.update on {namespace_id}",
    )
    try:
        changes = await change(namespace)
        if changes is not None:
            await service.update(
                session,
                viewer.principal,
                starter,
                namespace_id=namespace_id,
                resource_version=resource_version,
                retention_days=changes.get("retention_days"),
                accepted_client_ca=changes.get("accepted_client_ca"),
                certificate_filters=changes.get("certificate_filters"),
                auth_method=changes.get("auth_method"),
                delete_protection=changes.get("delete_protection"),
                async_operation_id=None,
            )
    except StratusError as refused:
        if refused.status in (401, 403, 404):
            raise
        await session.rollback()
        namespace = await service.get(session, viewer.principal, namespace_id)
        if isinstance(refused, ResourceVersionMismatch):
            # The form's values are out of date: show the namespace as it is now.
            stale = InvalidField(STALE_FORM, field="resource_version")
            stale.status, stale.title = refused.status, refused.title
            return await _detail(request, viewer, session, settings, namespace, error=stale)
        return await _detail(
            request, viewer, session, settings, namespace, error=refused, values=values
        )
    return RedirectResponse(f"/namespaces/{namespace_id}", status_code=303)


def _filters_from_form(form_rows: list[list[str]]) -> list[dict[str, object]]:
    """The filter rows of the settings form, empty rows left out."""
    filters: list[dict[str, object]] = []
    for row in zip(*form_rows, strict=True):
        entry = {
            name: value.strip()
            for name, value in zip(FILTER_INPUTS, row, strict=True)
            if value.strip()
        }
        if entry:
            filters.append(entry)
    return filters


@router.post("/namespaces/{namespace_id}/settings")
async def namespace_settings(
    request: Request,
    namespace_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    starter: StarterDep,
    settings: SettingsDep,
    resource_version: Annotated[str, Form()],
    retention_days: Annotated[str, Form()] = "",
    auth_method: Annotated[str, Form()] = "",
    filter_cn: Annotated[list[str] | None, Form()] = None,
    filter_o: Annotated[list[str] | None, Form()] = None,
    filter_ou: Annotated[list[str] | None, Form()] = None,
    filter_san: Annotated[list[str] | None, Form()] = None,
    delete_protection: Annotated[str, Form()] = "",
) -> Response:
    """Change retention, auth method, certificate filters and delete protection in one update
    (only the fields that differ from the namespace's are sent, so the audit event names what
    changed). An unticked checkbox is absent from the form: protection off."""
    columns = [filter_cn or [], filter_o or [], filter_ou or [], filter_san or []]
    if len({len(column) for column in columns}) != 1:
        raise InvalidField("the filter rows are incomplete; reload the page")
    submitted_filters = [
        dict(zip(FILTER_INPUTS, row, strict=True)) for row in zip(*columns, strict=True)
    ]
    values: dict[str, object] = {
        "retention_days": retention_days,
        "auth_method": auth_method,
        "filters": submitted_filters,
        "delete_protection": bool(delete_protection),
    }

    async def change(namespace: Namespace) -> NamespaceChange | None:
        try:
            days = int(retention_days)
        except ValueError:
            raise InvalidField(
                "retention must be a whole number of days", field="retention_days"
            ) from None
        try:
            method = AuthMethod(auth_method)
        except ValueError:
            raise InvalidField("choose an authentication method", field="auth_method") from None
        filters = _filters_from_form(columns)
        changes = NamespaceChange()
        if days != namespace.retention_days:
            changes["retention_days"] = days
        if method != namespace.auth_method:
            changes["auth_method"] = method
        if filters != namespace.certificate_filters:
            changes["certificate_filters"] = filters
        if bool(delete_protection) != namespace.delete_protection:
            changes["delete_protection"] = bool(delete_protection)
        return changes or None

    return await _apply(
        request,
        viewer,
        session,
        starter,
        settings,
        namespace_id,
        resource_version,
        change,
        values=values,
    )


@router.post("/namespaces/{namespace_id}/cas")
async def namespace_ca_add(
    request: Request,
    namespace_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    starter: StarterDep,
    settings: SettingsDep,
    resource_version: Annotated[str, Form()],
    accepted_client_ca: Annotated[str, Form()] = "",
    ca_file: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Add the uploaded (or pasted) CA certificates to the namespace's bundle."""

    async def change(namespace: Namespace) -> NamespaceChange:
        added = await _read_ca(ca_file, accepted_client_ca)
        return NamespaceChange(
            accepted_client_ca=namespace.accepted_client_ca.rstrip() + "\n" + added
        )

    return await _apply(
        request, viewer, session, starter, settings, namespace_id, resource_version, change
    )


@router.post("/namespaces/{namespace_id}/cas/remove")
async def namespace_ca_remove(
    request: Request,
    namespace_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    starter: StarterDep,
    settings: SettingsDep,
    resource_version: Annotated[str, Form()],
    fingerprint: Annotated[str, Form()],
) -> Response:
    """Remove one CA (by SHA-256 fingerprint) from the namespace's bundle."""

    async def change(namespace: Namespace) -> NamespaceChange:
        kept: list[x509.Certificate] = [
            certificate
            for certificate in parse_ca_bundle(namespace.accepted_client_ca).certificates
            if certificate.fingerprint(hashes.SHA256()).hex() != fingerprint
        ]
        bundle = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in kept)
        return NamespaceChange(accepted_client_ca=bundle)

    return await _apply(
        request, viewer, session, starter, settings, namespace_id, resource_version, change
    )


@router.post("/namespaces/{namespace_id}/delete")
async def namespace_delete(
    request: Request,
    namespace_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    starter: StarterDep,
    settings: SettingsDep,
    resource_version: Annotated[str, Form()],
    confirm_name: Annotated[str, Form()] = "",
) -> Response:
    """Delete, once the user typed the namespace's name (the service checks the rest)."""
    namespace = await service.get(session, viewer.principal, namespace_id)
    # The policy first: a caller who may not delete is refused whatever it typed.
    require(
        viewer.principal,
        Action.NAMESPACE_DELETE,
        Resource(namespace.account_id, namespace.id),
        refusal=f"this credential may not perform namespace.delete on {namespace_id}",
    )
    try:
        if confirm_name.strip().lower() != namespace.name:
            raise InvalidField(
                f"type the namespace's name, {namespace.name}, to delete it",
                field="confirm_name",
            )
        await service.delete(
            session,
            viewer.principal,
            starter,
            namespace_id=namespace_id,
            resource_version=resource_version,
            async_operation_id=None,
        )
    except StratusError as refused:
        if refused.status in (401, 403, 404):
            raise
        await session.rollback()
        namespace = await service.get(session, viewer.principal, namespace_id)
        return await _detail(request, viewer, session, settings, namespace, error=refused)
    return RedirectResponse("/namespaces", status_code=303)
