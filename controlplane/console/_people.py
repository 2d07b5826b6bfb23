"""People and credentials pages: users (invite, account role, namespace permissions, removal),
service accounts (create, delete) and API keys (create with the secret shown once, revoke).

Every read and write goes through ``controlplane.users``, ``controlplane.service_accounts`` and
``controlplane.api_keys`` — the services the API's endpoints call — so the policy, the tenant
scoping, the last-owner guard and the audit events are the API's own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Protocol, TypeVar

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.ext.asyncio import AsyncSession

from auth import (
    AccountRole,
    Action,
    NamespacePermission,
    PrincipalKind,
    Resource,
)
from controlplane.api_keys import service as api_keys
from controlplane.console._session import CurrentViewer, Viewer
from controlplane.console._templates import render
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.deps import SessionDep, SettingsDep
from controlplane.kit.errors import InvalidField, StratusError
from controlplane.models import ApiKey, Namespace, NamespaceAccess, ServiceAccount, User
from controlplane.namespaces import service as namespaces
from controlplane.service_accounts import service as service_accounts
from controlplane.users import service as users

router = APIRouter(include_in_schema=False)
T = TypeVar("T")

# The expiry a new key's form proposes.
DEFAULT_KEY_DAYS = 90
ROLE_LABELS = {
    AccountRole.OWNER: "Owner",
    AccountRole.ADMIN: "Admin",
    AccountRole.DEVELOPER: "Developer",
    AccountRole.FINANCE_ADMIN: "Finance admin",
    AccountRole.READ: "Read",
    AccountRole.METRICS_READ: "Metrics read",
}


class _Form(Protocol):
    """The page a form was posted from, rendered again with the error that refused it."""

    def __call__(self, *, error: StratusError) -> Awaitable[Response]: ...


async def _shown_on_form(
    session: AsyncSession, refused: StratusError, fields: Mapping[str, str]
) -> None:
    """Prepare ``refused`` for the form it came from: the service's field names become the
    form's (``fields``), and the request's work is rolled back. Policy refusals and unknown
    ids (401, 403, 404) are raised again, for the error page, unless they name a form field."""
    if refused.field is not None and refused.field in fields:
        refused.field = fields[refused.field]
    elif refused.status in (401, 403, 404):
        raise refused
    await session.rollback()


async def _submit(
    session: AsyncSession,
    change: Callable[[], Awaitable[T]],
    *,
    done: Callable[[T], str],
    form: _Form,
    fields: Mapping[str, str] | None = None,
) -> Response:
    """Make ``change`` (the service call, with any parsing of the form's values) and redirect
    to ``done(result)``; a refusal the form can show re-renders ``form`` with it."""
    try:
        result = await change()
    except StratusError as refused:
        await _shown_on_form(session, refused, fields or {})
        return await form(error=refused)
    return RedirectResponse(done(result), status_code=303)


def _account_role(value: str) -> AccountRole:
    try:
        return AccountRole(value)
    except ValueError:
        raise InvalidField("choose an account role", field="account_role") from None


def _tabs(viewer: Viewer) -> list[tuple[str, str]]:
    """The people pages the viewer may open (the sub-navigation)."""
    tabs = []
    if viewer.may(Action.USER_READ):
        tabs.append(("/users", "Users"))
    if viewer.may(Action.GROUP_READ):
        tabs.append(("/groups", "Groups"))
    if viewer.may(Action.SERVICE_ACCOUNT_READ):
        tabs.append(("/service-accounts", "Service accounts"))
    tabs.append(("/api-keys", "API keys"))
    return tabs


def _assignable_roles(viewer: Viewer, action: Action) -> list[AccountRole]:
    """The roles the viewer may give (only owners give ``owner``), as the policy answers."""
    return [role for role in AccountRole if viewer.may(action, Resource(role=role.value))]


def _page(
    request: Request,
    viewer: Viewer,
    template: str,
    *,
    error: StratusError | None = None,
    status_code: int | None = None,
    **context: object,
) -> Response:
    return render(
        request,
        template,
        status_code=status_code or (error.status if error else 200),
        error=error,
        tabs=_tabs(viewer),
        role_labels={role.value: label for role, label in ROLE_LABELS.items()},
        **context,
    )


# Users ------------------------------------------------------------------------------------


@router.get("/users")
async def user_list(request: Request, viewer: CurrentViewer, session: SessionDep) -> Response:
    return await _user_list(request, viewer, session)


async def _user_list(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    *,
    values: dict[str, str] | None = None,
    error: StratusError | None = None,
) -> Response:
    found = await users.list_all(session, viewer.principal)
    permissions = await users.namespace_permissions(session, viewer.principal, found)
    return _page(
        request,
        viewer,
        "users.html",
        error=error,
        users=found,
        permissions=permissions,
        values=values or {"email": "", "account_role": AccountRole.DEVELOPER.value},
        invite_roles=_assignable_roles(viewer, Action.USER_CREATE),
        may_invite=viewer.may(Action.USER_CREATE),
    )


@router.post("/users")
async def user_invite(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    settings: SettingsDep,
    email: Annotated[str, Form()] = "",
    account_role: Annotated[str, Form()] = "",
) -> Response:
    """Invite a user, as ``POST /api/v1/users`` does."""
    require(viewer.principal, Action.USER_CREATE)
    values = {"email": email, "account_role": account_role}
    return await _submit(
        session,
        lambda: users.invite(
            session,
            viewer.principal,
            email=email,
            account_role=_account_role(account_role),
            lifetime=dt.timedelta(days=settings.invitation_lifetime_days),
        ),
        done=lambda user: f"/users/{user.id}",
        form=partial(_user_list, request, viewer, session, values=values),
    )


@dataclass(frozen=True)
class _NamespaceGrant:
    """A row of a user's page: the user's permission on one namespace, and whether the viewer
    may change it there (as the policy answers for that namespace)."""

    namespace: Namespace
    permission: NamespacePermission | None
    may_change: bool


def _may_grant(viewer: Viewer, namespace: Namespace) -> bool:
    return viewer.may(Action.NAMESPACE_ACCESS_UPDATE, Resource(namespace.account_id, namespace.id))


async def _namespace_grants(
    session: AsyncSession, viewer: Viewer, rows: list[NamespaceAccess]
) -> list[_NamespaceGrant]:
    """A row per namespace the viewer sees, with the permission ``rows`` (one user's or one
    group's access rows) give there: the "Namespace permissions" table of a detail page."""
    grants = {row.namespace_id: row.permission for row in rows}
    return [
        _NamespaceGrant(namespace, grants.get(namespace.id), _may_grant(viewer, namespace))
        for namespace in await namespaces.list_all(session, viewer.principal)
    ]


async def _submit_access(
    session: AsyncSession,
    permission: str,
    set_access: Callable[[NamespacePermission | None], Awaitable[object]],
    *,
    done: str,
    form: _Form,
    fields: Mapping[str, str] | None = None,
) -> Response:
    """The "Namespace permissions" form of a detail page: ``permission`` (read, write, admin,
    or "" to revoke) given with ``set_access``, then back to ``done``."""

    async def grant() -> None:
        try:
            granted = NamespacePermission(permission) if permission else None
        except ValueError:
            raise InvalidField("choose read, write, admin or none", field="permission") from None
        await set_access(granted)

    return await _submit(session, grant, done=lambda _: done, form=form, fields=fields)


def _confirm_deletion(
    request: Request,
    viewer: Viewer,
    *,
    error: StratusError | None = None,
    heading: str,
    explanation: str,
    action: str,
    resource_version: str,
    confirm_label: str,
    cancel: str,
) -> Response:
    """The page that asks before a deletion (posted to ``action`` with the row's
    ``resource_version``, so a change made since is refused)."""
    return _page(
        request,
        viewer,
        "confirm.html",
        error=error,
        heading=heading,
        explanation=explanation,
        action=action,
        hidden={"resource_version": resource_version},
        confirm_label=confirm_label,
        cancel=cancel,
    )


async def _submit_deletion(
    session: AsyncSession,
    delete: Callable[[], Awaitable[object]],
    *,
    done: str,
    fetch: Callable[[], Awaitable[T]],
    confirm: Callable[[T, StratusError], Response],
) -> Response:
    """Make the confirmed ``delete`` and go to ``done``; a refusal shows the confirmation again
    (of the row as ``fetch`` finds it now) with the error."""

    async def confirm_again(*, error: StratusError) -> Response:
        return confirm(await fetch(), error)

    return await _submit(session, delete, done=lambda _: done, form=confirm_again)


async def _user_detail(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    user_id: str,
    *,
    error: StratusError | None = None,
) -> Response:
    user = await users.get(session, viewer.principal, user_id)
    rows = (await users.namespace_permissions(session, viewer.principal, [user]))[user.id]
    return _page(
        request,
        viewer,
        "user_detail.html",
        error=error,
        user=user,
        namespaces=await _namespace_grants(session, viewer, rows),
        roles=_assignable_roles(viewer, Action.USER_UPDATE),
        permissions=list(NamespacePermission),
        may_update=viewer.may(Action.USER_UPDATE, Resource(role=user.account_role)),
        may_remove=viewer.may(Action.USER_DELETE, Resource(role=user.account_role))
        and user.id != viewer.principal.id,
    )


@router.get("/users/{user_id}")
async def user_detail(
    request: Request, user_id: str, viewer: CurrentViewer, session: SessionDep
) -> Response:
    return await _user_detail(request, viewer, session, user_id)


@router.post("/users/{user_id}/role")
async def user_role(
    request: Request,
    user_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    resource_version: Annotated[str, Form()] = "",
    account_role: Annotated[str, Form()] = "",
) -> Response:
    """Change the user's account role, as ``POST /api/v1/users/{id}`` does."""
    require(viewer.principal, Action.USER_UPDATE)
    return await _submit(
        session,
        lambda: users.update(
            session,
            viewer.principal,
            user_id=user_id,
            resource_version=resource_version,
            account_role=_account_role(account_role),
        ),
        done=lambda _: f"/users/{user_id}",
        form=partial(_user_detail, request, viewer, session, user_id),
    )


@router.post("/users/{user_id}/access")
async def user_access(
    request: Request,
    user_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    namespace_id: Annotated[str, Form()] = "",
    permission: Annotated[str, Form()] = "",
) -> Response:
    """Grant (read, write, admin) or revoke ("") the user's permission on one namespace, as
    ``POST /api/v1/namespaces/{id}/users/{user_id}/access`` does."""
    require(viewer.principal, Action.NAMESPACE_ACCESS_UPDATE)
    return await _submit_access(
        session,
        permission,
        lambda granted: users.set_namespace_access(
            session,
            viewer.principal,
            namespace_id=namespace_id,
            user_id=user_id,
            permission=granted,
        ),
        done=f"/users/{user_id}",
        form=partial(_user_detail, request, viewer, session, user_id),
    )


@router.get("/users/{user_id}/remove")
async def user_remove_confirm(
    request: Request, user_id: str, viewer: CurrentViewer, session: SessionDep
) -> Response:
    user = await users.get(session, viewer.principal, user_id)
    require(viewer.principal, Action.USER_DELETE, Resource(role=user.account_role))
    return _confirm_user_removal(request, viewer, user)


def _confirm_user_removal(
    request: Request, viewer: Viewer, user: User, *, error: StratusError | None = None
) -> Response:
    return _confirm_deletion(
        request,
        viewer,
        error=error,
        heading=f"Remove {user.email}?",
        explanation=(
            "The user loses access to the account at once; their API keys stop working and "
            "their namespace permissions are removed."
        ),
        action=f"/users/{user.id}/remove",
        resource_version=user.resource_version,
        confirm_label="Remove user",
        cancel=f"/users/{user.id}",
    )


@router.post("/users/{user_id}/remove")
async def user_remove(
    request: Request,
    user_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    resource_version: Annotated[str, Form()] = "",
) -> Response:
    """Remove the user, as ``DELETE /api/v1/users/{id}`` does."""
    require(viewer.principal, Action.USER_DELETE)
    return await _submit_deletion(
        session,
        lambda: users.delete(
            session, viewer.principal, user_id=user_id, resource_version=resource_version
        ),
        done="/users",
        fetch=lambda: users.get(session, viewer.principal, user_id),
        confirm=lambda user, error: _confirm_user_removal(request, viewer, user, error=error),
    )


# Service accounts -------------------------------------------------------------------------


async def _service_account_list(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    *,
    values: dict[str, str] | None = None,
    error: StratusError | None = None,
) -> Response:
    found = await service_accounts.list_all(session, viewer.principal)
    scopes = await service_accounts.scope_permissions(session, viewer.principal, found)
    visible = await namespaces.list_all(session, viewer.principal)
    return _page(
        request,
        viewer,
        "service_accounts.html",
        error=error,
        service_accounts=found,
        scopes=scopes,
        namespaces=visible,
        values=values
        or {
            "name": "",
            "description": "",
            "scope": "account",
            "account_role": AccountRole.DEVELOPER.value,
            "namespace_id": "",
            "namespace_permission": NamespacePermission.WRITE.value,
        },
        # A service account is never an owner (the service refuses it too).
        roles=[role for role in AccountRole if role is not AccountRole.OWNER],
        permissions=list(NamespacePermission),
        may_create=viewer.may(Action.SERVICE_ACCOUNT_CREATE),
        may_delete=viewer.may(Action.SERVICE_ACCOUNT_DELETE),
    )


@router.get("/service-accounts")
async def service_account_list(
    request: Request, viewer: CurrentViewer, session: SessionDep
) -> Response:
    return await _service_account_list(request, viewer, session)


@router.post("/service-accounts")
async def service_account_create(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    name: Annotated[str, Form()] = "",
    description: Annotated[str, Form()] = "",
    scope: Annotated[str, Form()] = "account",
    account_role: Annotated[str, Form()] = "",
    namespace_id: Annotated[str, Form()] = "",
    namespace_permission: Annotated[str, Form()] = "",
) -> Response:
    """Create an account-wide or a namespace-scoped service account, as
    ``POST /api/v1/service-accounts`` does."""
    require(viewer.principal, Action.SERVICE_ACCOUNT_CREATE)
    values = {
        "name": name,
        "description": description,
        "scope": scope,
        "account_role": account_role,
        "namespace_id": namespace_id,
        "namespace_permission": namespace_permission,
    }

    async def create() -> None:
        role: AccountRole | None = None
        permission: NamespacePermission | None = None
        if scope == "namespace":
            if not namespace_id:
                raise InvalidField("choose the namespace", field="namespace_id")
            try:
                permission = NamespacePermission(namespace_permission)
            except ValueError:
                raise InvalidField(
                    "choose read, write or admin", field="namespace_permission"
                ) from None
        else:
            role = _account_role(account_role)
        await service_accounts.create(
            session,
            viewer.principal,
            name=name,
            description=description,
            account_role=role,
            namespace_id=namespace_id if scope == "namespace" else None,
            namespace_permission=permission,
        )

    return await _submit(
        session,
        create,
        done=lambda _: "/service-accounts",
        form=partial(_service_account_list, request, viewer, session, values=values),
        fields={"namespace_scope.namespace_id": "namespace_id"},
    )


def _confirm_service_account_deletion(
    request: Request, viewer: Viewer, service_account: ServiceAccount
) -> Response:
    return _confirm_deletion(
        request,
        viewer,
        heading=f"Delete service account {service_account.name}?",
        explanation="Its API keys stop working at once.",
        action=f"/service-accounts/{service_account.id}/delete",
        resource_version=service_account.resource_version,
        confirm_label="Delete service account",
        cancel="/service-accounts",
    )


@router.get("/service-accounts/{service_account_id}/delete")
async def service_account_delete_confirm(
    request: Request, service_account_id: str, viewer: CurrentViewer, session: SessionDep
) -> Response:
    service_account = await service_accounts.get(session, viewer.principal, service_account_id)
    require(viewer.principal, Action.SERVICE_ACCOUNT_DELETE)
    return _confirm_service_account_deletion(request, viewer, service_account)


@router.post("/service-accounts/{service_account_id}/delete")
async def service_account_delete(
    request: Request,
    service_account_id: str,
    viewer: CurrentViewer,
    session: SessionDep,
    resource_version: Annotated[str, Form()] = "",
) -> Response:
    """Delete the service account and its keys, as ``DELETE /api/v1/service-accounts/{id}``
    does."""
    require(viewer.principal, Action.SERVICE_ACCOUNT_DELETE)
    await service_accounts.delete(
        session,
        viewer.principal,
        service_account_id=service_account_id,
        resource_version=resource_version or None,
    )
    return RedirectResponse("/service-accounts", status_code=303)


# API keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KeyRow:
    key: ApiKey
    owner: str
    state: str


def _key_resource(key: ApiKey) -> Resource:
    return Resource(account_id=key.account_id, owner_id=key.owner_id)


def _key_state(key: ApiKey, now: dt.datetime) -> str:
    if key.disabled:
        return "disabled"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


async def _owner_names(session: AsyncSession, viewer: Viewer) -> dict[str, str]:
    """Owner id → what the key list calls it (the viewer is "you")."""
    names: dict[str, str] = {}
    if viewer.may(Action.USER_READ):
        names.update({u.id: u.email for u in await users.list_all(session, viewer.principal)})
    if viewer.may(Action.SERVICE_ACCOUNT_READ):
        found = await service_accounts.list_all(session, viewer.principal)
        names.update({sa.id: f"service account {sa.name}" for sa in found})
    names[viewer.principal.id] = "you"
    return names


async def _key_owners(session: AsyncSession, viewer: Viewer) -> list[ServiceAccount]:
    """The service accounts the viewer may issue keys for (admins and owners)."""
    everyone = Resource.whole_account(viewer.principal.account_id)
    if not viewer.may(Action.API_KEY_CREATE, everyone) or not viewer.may(
        Action.SERVICE_ACCOUNT_READ
    ):
        return []
    return await service_accounts.list_all(session, viewer.principal)


async def _api_key_list(
    request: Request,
    viewer: Viewer,
    session: AsyncSession,
    *,
    values: dict[str, str] | None = None,
    error: StratusError | None = None,
) -> Response:
    keys = await api_keys.list_all(session, viewer.principal)
    names = await _owner_names(session, viewer)
    now = utcnow()
    default_expiry = (now + dt.timedelta(days=DEFAULT_KEY_DAYS)).date()
    return _page(
        request,
        viewer,
        "api_keys.html",
        error=error,
        rows=[
            _KeyRow(key, names.get(key.owner_id or "", key.owner_id or ""), _key_state(key, now))
            for key in keys
        ],
        values=values
        or {"display_name": "", "expires_on": default_expiry.isoformat(), "owner": ""},
        min_expiry=(now + dt.timedelta(days=1)).date().isoformat(),
        max_expiry=(now + api_keys.MAX_KEY_LIFETIME).date().isoformat(),
        owners=await _key_owners(session, viewer),
        may_create=viewer.may(Action.API_KEY_CREATE),
        may_revoke={key.id: viewer.may(Action.API_KEY_DELETE, _key_resource(key)) for key in keys},
    )


@router.get("/api-keys")
async def api_key_list(request: Request, viewer: CurrentViewer, session: SessionDep) -> Response:
    return await _api_key_list(request, viewer, session)


def _expiry(expires_on: str) -> dt.datetime:
    """The instant a key made to expire on ``expires_on`` stops working: that day's start,
    UTC."""
    try:
        day = dt.date.fromisoformat(expires_on)
    except ValueError:
        raise InvalidField("give the expiry date as YYYY-MM-DD", field="expiry") from None
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


@router.post("/api-keys")
async def api_key_create(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    display_name: Annotated[str, Form()] = "",
    expires_on: Annotated[str, Form()] = "",
    owner: Annotated[str, Form()] = "",
) -> Response:
    """Issue a key, as ``POST /api/v1/api-keys`` does, and show its secret on this answer —
    the only time it is shown; it is never put in a URL, a redirect or a later page."""
    require(viewer.principal, Action.API_KEY_CREATE)
    values = {"display_name": display_name, "expires_on": expires_on, "owner": owner}
    try:
        api_key, token = await api_keys.create(
            session,
            viewer.principal,
            display_name=display_name,
            expiry=_expiry(expires_on),
            owner_type=PrincipalKind.SERVICE_ACCOUNT.value if owner else None,
            owner_id=owner or None,
        )
    except StratusError as refused:
        await _shown_on_form(session, refused, {"owner_id": "owner"})
        return await _api_key_list(request, viewer, session, values=values, error=refused)
    names = await _owner_names(session, viewer)
    response = _page(
        request,
        viewer,
        "api_key_created.html",
        status_code=201,
        api_key=api_key,
        owner=names.get(api_key.owner_id or "", api_key.owner_id or ""),
        token=token,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/api-keys/{api_key_id}/revoke")
async def api_key_revoke_confirm(
    request: Request, api_key_id: str, viewer: CurrentViewer, session: SessionDep
) -> Response:
    api_key = await api_keys.get(session, viewer.principal, api_key_id)
    require(viewer.principal, Action.API_KEY_DELETE, _key_resource(api_key))
    return _page(
        request,
        viewer,
        "confirm.html",
        heading=f"Revoke API key {api_key.display_name}?",
        explanation=f"Key {api_key.id} stops working at once; this cannot be undone.",
        action=f"/api-keys/{api_key.id}/revoke",
        hidden={},
        confirm_label="Revoke key",
        cancel="/api-keys",
    )


@router.post("/api-keys/{api_key_id}/revoke")
async def api_key_revoke(api_key_id: str, viewer: CurrentViewer, session: SessionDep) -> Response:
    """Delete the key (it stops authenticating at once), as ``DELETE /api/v1/api-keys/{id}``
    does."""
    await api_keys.delete(session, viewer.principal, key_id=api_key_id)
    return RedirectResponse("/api-keys", status_code=303)
