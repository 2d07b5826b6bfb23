"""Namespace pages: list (live state), create (CA upload), detail (endpoints, SDK snippets,
CAs, limits), CA add/remove, delete. Every read and write goes through
``controlplane.namespaces.service``, as the API's endpoints do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from fastapi import APIRouter, File, Form, Request, Response, UploadFile
from fastapi.responses import RedirectResponse

from auth import Action, AuthMethod, Resource, parse_ca_bundle
from controlplane.api.deps import StarterDep
from controlplane.config import ApiSettings
from controlplane.console._session import CurrentViewer
from controlplane.console._templates import render
from controlplane.kit.authorization import require
from controlplane.kit.deps import SessionDep, SettingsDep
from controlplane.kit.errors import InvalidField, StratusError
from controlplane.models import Namespace, NamespaceState
from controlplane.namespaces import service

router = APIRouter(include_in_schema=False)

# A CA bundle is small (the API caps it far below the body limit); more is refused unread.
MAX_CA_FILE_BYTES = 64 * 1024
# States after which nothing changes without a user's action: the list stops polling.
FINAL_STATES = frozenset({NamespaceState.ACTIVE, NamespaceState.FAILED})


@dataclass(frozen=True)
class CaRow:
    subject: str
    fingerprint: str
    not_after: str


@dataclass(frozen=True)
class Endpoints:
    mtls_address: str
    server_name: str
    api_key_address: str | None


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


def _endpoints(settings: ApiSettings, namespace: Namespace) -> Endpoints:
    api_key = (
        f"{settings.gateway_host}:{settings.gateway_api_key_port}"
        if settings.gateway_api_key_port and namespace.auth_method.accepts_api_keys
        else None
    )
    return Endpoints(
        mtls_address=f"{settings.gateway_host}:{settings.gateway_port}",
        server_name=f"{namespace.id}.{settings.gateway_domain}",
        api_key_address=api_key,
    )


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


@router.get("/namespaces")
async def namespace_list(request: Request, viewer: CurrentViewer, session: SessionDep) -> Response:
    namespaces = await service.list_all(session, viewer.principal)
    return render(
        request,
        "namespaces.html",
        namespaces=namespaces,
        polling=_any_pending(namespaces),
        may_create=viewer.may(Action.NAMESPACE_CREATE),
    )


@router.get("/namespaces/rows")
async def namespace_rows(request: Request, viewer: CurrentViewer, session: SessionDep) -> Response:
    """The list's table body, polled by htmx while a namespace is still changing."""
    namespaces = await service.list_all(session, viewer.principal)
    return render(
        request, "_namespace_rows.html", namespaces=namespaces, polling=_any_pending(namespaces)
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


def _detail(
    request: Request,
    viewer: CurrentViewer,
    settings: ApiSettings,
    namespace: Namespace,
    *,
    error: StratusError | None = None,
) -> Response:
    resource = Resource(namespace.account_id, namespace.id)
    return render(
        request,
        "namespace_detail.html",
        status_code=error.status if error else 200,
        namespace=namespace,
        cas=_cas(namespace),
        endpoints=_endpoints(settings, namespace),
        may_update=viewer.may(Action.NAMESPACE_UPDATE, resource),
        may_delete=viewer.may(Action.NAMESPACE_DELETE, resource),
        may_browse=viewer.may(Action.NAMESPACE_DATA_READ, resource),
        final=namespace.state in FINAL_STATES,
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
    return _detail(request, viewer, settings, namespace)


async def _update_cas(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    starter: StarterDep,
    settings: ApiSettings,
    namespace_id: str,
    resource_version: str,
    new_bundle: str,
) -> Response:
    try:
        await service.update(
            session,
            viewer.principal,
            starter,
            namespace_id=namespace_id,
            resource_version=resource_version,
            retention_days=None,
            accepted_client_ca=new_bundle,
            certificate_filters=None,
            async_operation_id=None,
        )
    except StratusError as refused:
        if refused.status in (401, 403, 404):
            raise
        await session.rollback()
        namespace = await service.get(session, viewer.principal, namespace_id)
        return _detail(request, viewer, settings, namespace, error=refused)
    return RedirectResponse(f"/namespaces/{namespace_id}", status_code=303)


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
    namespace = await service.get(session, viewer.principal, namespace_id)
    try:
        added = await _read_ca(ca_file, accepted_client_ca)
    except InvalidField as invalid:
        return _detail(request, viewer, settings, namespace, error=invalid)
    bundle = namespace.accepted_client_ca.rstrip() + "\n" + added
    return await _update_cas(
        request, viewer, session, starter, settings, namespace_id, resource_version, bundle
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
    namespace = await service.get(session, viewer.principal, namespace_id)
    kept: list[x509.Certificate] = [
        certificate
        for certificate in parse_ca_bundle(namespace.accepted_client_ca).certificates
        if certificate.fingerprint(hashes.SHA256()).hex() != fingerprint
    ]
    bundle = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in kept)
    return await _update_cas(
        request, viewer, session, starter, settings, namespace_id, resource_version, bundle
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
        return _detail(request, viewer, settings, namespace, error=refused)
    return RedirectResponse("/namespaces", status_code=303)
