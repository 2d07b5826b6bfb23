"""Typed Python client for the Stratus admin API (what the ``stratus`` CLI uses)."""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel

from auth import AuthMethod
from controlplane.accounts.schemas import (
    AccountCreate,
    AccountCreated,
    AccountDetailOut,
    AccountPage,
    AccountSuspend,
    OwnAccountOut,
)
from controlplane.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut
from controlplane.audit.schemas import AuditEventOut, AuditEventPage
from controlplane.audit_sink.schemas import AuditLogSinkOut, AuditLogSinkSet
from controlplane.billing_account.schemas import (
    AccountPlanOut,
    CreditGrant,
    CreditList,
    CreditOut,
    PlanSet,
)
from controlplane.cells.schemas import CellList, CellOut, CellRegister
from controlplane.exports.schemas import ExportSinkOut, ExportSinkSet
from controlplane.gateway_routes.schemas import GatewayList, GatewayOut
from controlplane.group_claims.schemas import (
    DEFAULT_CLAIM,
    GroupClaimMappingIn,
    GroupClaimsOut,
    GroupClaimsSet,
)
from controlplane.groups.schemas import (
    GroupCreate,
    GroupList,
    GroupMemberList,
    GroupMemberOut,
    GroupMembersChange,
    GroupOut,
    GroupUpdate,
)
from controlplane.history_exports.schemas import (
    HistoryExportSinkOut,
    HistoryExportSinkSet,
    HistoryExportSinkValidation,
)
from controlplane.identity.schemas import CurrentIdentity
from controlplane.insights.schemas import InsightsOut
from controlplane.invoices.schemas import (
    CreditNoteCreate,
    CreditNoteOut,
    InvoiceList,
    InvoiceOut,
    InvoiceSummary,
)
from controlplane.kit.page_schema import PagedList
from controlplane.namespaces.schemas import (
    CodecServerSpec,
    Lifecycle,
    NamespaceCreate,
    NamespaceLimits,
    NamespaceList,
    NamespaceOperation,
    NamespaceOut,
    NamespaceTagsUpdate,
    NamespaceUpdate,
)
from controlplane.operations.schemas import AsyncOperationList, AsyncOperationOut
from controlplane.quotas.schemas import AccountQuotasOut, AccountQuotasSet
from controlplane.scim.schemas import ScimTokenCreated, ScimTokenOut
from controlplane.service_accounts.schemas import (
    NamespaceScope,
    ServiceAccountCreate,
    ServiceAccountList,
    ServiceAccountOut,
    ServiceAccountUpdate,
)
from controlplane.sign_in.schemas import ConsoleLinkOut
from controlplane.states import SearchAttributeType
from controlplane.usage.schemas import UsageOut
from controlplane.users.schemas import UserInvite, UserList, UserOut, UserUpdate

if TYPE_CHECKING:
    from controlplane.declarative import AccountSpec, ApplyResult, Plan

M = TypeVar("M", bound=BaseModel)
L = TypeVar("L", bound=PagedList)
R = TypeVar("R")

# Rows per request when a client follows every page of a list.
WALK_PAGE_SIZE = 100


def _query(**params: object) -> dict[str, Any]:
    """The query of a list request: the filters that are set (enums as their values)."""
    return {
        name: getattr(value, "value", value) for name, value in params.items() if value is not None
    }


TERMINAL_STATES = frozenset({"FULFILLED", "FAILED"})


class _Unset(enum.Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET
"""For :meth:`StratusClient.update_group`: leave the group's account role as it is."""


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
        session: tuple[str, str] | None = None,
    ) -> None:
        """``api_key``, or ``session`` = (session token, CSRF token) from ``stratus login``."""
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        cookies: dict[str, str] = {}
        if session is not None and not api_key:
            token, csrf_token = session
            cookies["stratus_session"] = token
            headers["X-CSRF-Token"] = csrf_token
        self._http = httpx.Client(
            base_url=api_url.rstrip("/") + "/api/v1",
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StratusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _checked(
        self, method: str, path: str, *, json: Any = None, params: Any = None
    ) -> httpx.Response:
        """The response of a successful request; a problem answer raises StratusAPIError."""
        response = self._http.request(method, path, json=json, params=params)
        if response.is_error:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text or response.reason_phrase}
            raise StratusAPIError(response.status_code, problem)
        return response

    def _call(
        self, model: type[M], method: str, path: str, *, json: Any = None, params: Any = None
    ) -> M:
        response = self._checked(method, path, json=json, params=params)
        return model.model_validate(response.json())

    def _send(self, method: str, path: str, *, params: Any = None) -> None:
        """A request answered without a body (204)."""
        self._checked(method, path, params=params)

    def _walk(
        self,
        model: type[L],
        path: str,
        rows: Callable[[L], list[R]],
        params: dict[str, Any],
        *,
        page_size: int,
        limit: int | None,
    ) -> Iterator[R]:
        """Every row of a list route, following ``next_page_token`` (filters resent with each
        page), at most ``limit`` rows when given."""
        token = ""
        given = 0
        while limit is None or given < limit:
            query = {**params, "page_size": page_size}
            if token:
                query["page_token"] = token
            page = self._call(model, "GET", path, params=query)
            for row in rows(page):
                if limit is not None and given >= limit:
                    return
                yield row
                given += 1
            token = page.next_page_token
            if not token:
                return

    def create_account(self, name: str, owner_email: str) -> AccountCreated:
        body = AccountCreate(name=name, owner_email=owner_email)
        return self._call(AccountCreated, "POST", "/accounts", json=body.model_dump())

    def list_accounts_page(
        self,
        *,
        state: str | None = None,
        name: str | None = None,
        page_size: int = 100,
        page_token: str | None = None,
    ) -> AccountPage:
        """Operator: one page of the accounts (oldest first)."""
        params: dict[str, Any] = {"page_size": page_size}
        if state is not None:
            params["state"] = state
        if name is not None:
            params["name"] = name
        if page_token:
            params["page_token"] = page_token
        return self._call(AccountPage, "GET", "/accounts", params=params)

    def list_accounts(
        self, *, state: str | None = None, name: str | None = None, page_size: int = 100
    ) -> list[AccountDetailOut]:
        """Operator: every account matching the filters, following the pages."""
        accounts: list[AccountDetailOut] = []
        token: str | None = None
        while True:
            page = self.list_accounts_page(
                state=state, name=name, page_size=page_size, page_token=token
            )
            accounts.extend(page.accounts)
            if not page.next_page_token:
                return accounts
            token = page.next_page_token

    def get_account(self, account_id: str) -> AccountDetailOut:
        """Operator: one account with its state, owner, namespaces and usage this month."""
        return self._call(AccountDetailOut, "GET", f"/accounts/{account_id}")

    def suspend_account(self, account_id: str, reason: str) -> AccountDetailOut:
        body = AccountSuspend(reason=reason)
        return self._call(
            AccountDetailOut, "POST", f"/accounts/{account_id}/suspend", json=body.model_dump()
        )

    def resume_account(self, account_id: str) -> AccountDetailOut:
        return self._call(AccountDetailOut, "POST", f"/accounts/{account_id}/resume")

    def delete_account(self, account_id: str) -> AccountDetailOut:
        """Operator: start deleting the account (state ``deleting``, then ``deleted``)."""
        return self._call(AccountDetailOut, "DELETE", f"/accounts/{account_id}")

    def get_own_account(self) -> OwnAccountOut:
        """The caller's own account (id, name, state, plan)."""
        return self._call(OwnAccountOut, "GET", "/account")

    def get_account_quotas(self, account_id: str) -> AccountQuotasOut:
        """An account's quotas with their usage (the operator: any account; else one's own)."""
        return self._call(AccountQuotasOut, "GET", f"/accounts/{account_id}/quotas")

    def set_account_quotas(self, account_id: str, changes: AccountQuotasSet) -> AccountQuotasOut:
        """Operator only: the fields set in ``changes`` change (``None``: back to the default)."""
        return self._call(
            AccountQuotasOut,
            "POST",
            f"/accounts/{account_id}/quotas",
            json=changes.model_dump(exclude_unset=True),
        )

    def create_namespace(
        self,
        name: str,
        accepted_client_ca: str,
        *,
        retention_days: int = 30,
        certificate_filters: list[dict[str, object]] | None = None,
        async_operation_id: str | None = None,
        auth_method: AuthMethod = AuthMethod.MTLS,
        delete_protection: bool = False,
        tags: dict[str, str] | None = None,
        search_attributes: dict[str, SearchAttributeType] | None = None,
        codec_server: CodecServerSpec | None = None,
    ) -> NamespaceOperation:
        body = NamespaceCreate(
            name=name,
            retention_days=retention_days,
            accepted_client_ca=accepted_client_ca,
            certificate_filters=certificate_filters or [],
            async_operation_id=async_operation_id,
            auth_method=auth_method,
            lifecycle=Lifecycle(enable_delete_protection=delete_protection),
            tags=tags or {},
            search_attributes=search_attributes or {},
            codec_server=codec_server,
        )
        return self._call(
            NamespaceOperation, "POST", "/namespaces", json=body.model_dump(exclude_none=True)
        )

    def list_namespaces(
        self,
        *,
        name: str | None = None,
        tag: str | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> NamespaceList:
        """One page of the namespaces you may read, by name (``name``: a name prefix; ``tag``:
        "key:value", those with that tag)."""
        params = _query(name=name, tag=tag, page_size=page_size, page_token=page_token or None)
        return self._call(NamespaceList, "GET", "/namespaces", params=params)

    def iter_namespaces(
        self,
        *,
        name: str | None = None,
        tag: str | None = None,
        page_size: int = WALK_PAGE_SIZE,
        limit: int | None = None,
    ) -> Iterator[NamespaceOut]:
        """Every namespace you may read (all pages), by name."""
        return self._walk(
            NamespaceList,
            "/namespaces",
            lambda page: page.namespaces,
            _query(name=name, tag=tag),
            page_size=page_size,
            limit=limit,
        )

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
        auth_method: AuthMethod | None = None,
        delete_protection: bool | None = None,
        search_attributes: dict[str, SearchAttributeType] | None = None,
        rename_search_attributes: dict[str, str] | None = None,
        codec_server: CodecServerSpec | None = None,
        remove_codec_server: bool = False,
    ) -> NamespaceOperation:
        """Change what is given (None keeps the value; ``[]`` clears the filters).
        ``resource_version`` is the one last read: a concurrent change makes this a 409."""
        body = NamespaceUpdate(
            resource_version=resource_version,
            retention_days=retention_days,
            accepted_client_ca=accepted_client_ca,
            certificate_filters=certificate_filters,
            async_operation_id=async_operation_id,
            auth_method=auth_method,
            lifecycle=(
                Lifecycle(enable_delete_protection=delete_protection)
                if delete_protection is not None
                else None
            ),
            search_attributes=search_attributes,
            rename_search_attributes=rename_search_attributes,
            codec_server=codec_server,
            remove_codec_server=remove_codec_server,
        )
        return self._call(
            NamespaceOperation,
            "POST",
            f"/namespaces/{namespace_id}",
            json=body.model_dump(exclude_none=True),
        )

    def update_namespace_tags(
        self,
        namespace_id: str,
        *,
        upsert: dict[str, str] | None = None,
        remove: list[str] | None = None,
    ) -> NamespaceOut:
        """Set and remove tags at once (no operation: tags never reach the cell)."""
        body = NamespaceTagsUpdate(tags_to_upsert=upsert or {}, tags_to_remove=remove or [])
        return self._call(
            NamespaceOut, "POST", f"/namespaces/{namespace_id}/tags", json=body.model_dump()
        )

    def delete_namespace(
        self, namespace_id: str, *, resource_version: str | None = None
    ) -> NamespaceOperation:
        params = {"resource_version": resource_version} if resource_version else None
        return self._call(
            NamespaceOperation, "DELETE", f"/namespaces/{namespace_id}", params=params
        )

    def set_namespace_limits(
        self,
        namespace_id: str,
        *,
        requests_per_second: int,
        actions_per_second: int,
        async_operation_id: str | None = None,
    ) -> NamespaceOperation:
        """Operator only: the gateway's rate limits for one namespace."""
        body = NamespaceLimits(
            requests_per_second=requests_per_second,
            actions_per_second=actions_per_second,
            async_operation_id=async_operation_id,
        )
        return self._call(
            NamespaceOperation,
            "POST",
            f"/namespaces/{namespace_id}/limits",
            json=body.model_dump(exclude_none=True),
        )

    def current_identity(self) -> CurrentIdentity:
        return self._call(CurrentIdentity, "GET", "/current-identity")

    def create_console_link(self) -> ConsoleLinkOut:
        """A one-time link that signs this credential's user into the web console."""
        return self._call(ConsoleLinkOut, "POST", "/auth/console-link")

    # Users
    def invite_user(self, email: str, account_role: str) -> UserOut:
        body = UserInvite.model_validate({"email": email, "account_role": account_role})
        return self._call(UserOut, "POST", "/users", json=body.model_dump(mode="json"))

    def list_users(
        self, *, email: str | None = None, page_size: int = 100, page_token: str = ""
    ) -> UserList:
        """One page of the account's users, by email (``email``: only that user)."""
        params = _query(email=email, page_size=page_size, page_token=page_token or None)
        return self._call(UserList, "GET", "/users", params=params)

    def iter_users(
        self, *, email: str | None = None, page_size: int = WALK_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[UserOut]:
        """Every user of the account (all pages), by email."""
        return self._walk(
            UserList,
            "/users",
            lambda page: page.users,
            _query(email=email),
            page_size=page_size,
            limit=limit,
        )

    def get_user(self, user_id: str) -> UserOut:
        return self._call(UserOut, "GET", f"/users/{user_id}")

    def update_user(self, user_id: str, *, resource_version: str, account_role: str) -> UserOut:
        body = UserUpdate.model_validate(
            {"resource_version": resource_version, "account_role": account_role}
        )
        return self._call(UserOut, "POST", f"/users/{user_id}", json=body.model_dump(mode="json"))

    def delete_user(self, user_id: str) -> None:
        self._send("DELETE", f"/users/{user_id}")

    def set_namespace_access(
        self, namespace_id: str, user_id: str, permission: str | None
    ) -> UserOut:
        """Give the user ``permission`` (admin, write, read) on the namespace; None removes it."""
        return self._call(
            UserOut,
            "POST",
            f"/namespaces/{namespace_id}/users/{user_id}/access",
            json={"permission": permission},
        )

    def resend_invitation(self, user_id: str) -> UserOut:
        """A pending invitation's new expiry (from now); 409 once the user has signed in."""
        return self._call(UserOut, "POST", f"/users/{user_id}/invitation")

    def set_service_account_namespace_access(
        self, namespace_id: str, service_account_id: str, permission: str | None
    ) -> ServiceAccountOut:
        """Grant an account-wide service account ``permission`` on the namespace (on top of
        its role); None removes the grant."""
        return self._call(
            ServiceAccountOut,
            "POST",
            f"/namespaces/{namespace_id}/service-accounts/{service_account_id}/access",
            json={"permission": permission},
        )

    # User groups
    def create_group(
        self, name: str, *, description: str = "", account_role: str | None = None
    ) -> GroupOut:
        """A group whose members hold ``account_role`` (None: none; never owner)."""
        body = GroupCreate.model_validate(
            {"name": name, "description": description, "account_role": account_role}
        )
        return self._call(GroupOut, "POST", "/groups", json=body.model_dump(mode="json"))

    def list_groups(
        self, *, name: str | None = None, page_size: int = 100, page_token: str = ""
    ) -> GroupList:
        """One page of the account's groups, by name (``name``: a name prefix)."""
        params = _query(name=name, page_size=page_size, page_token=page_token or None)
        return self._call(GroupList, "GET", "/groups", params=params)

    def iter_groups(
        self, *, name: str | None = None, page_size: int = WALK_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[GroupOut]:
        """Every group of the account (all pages), by name."""
        return self._walk(
            GroupList,
            "/groups",
            lambda page: page.groups,
            _query(name=name),
            page_size=page_size,
            limit=limit,
        )

    def get_group(self, group_id: str) -> GroupOut:
        return self._call(GroupOut, "GET", f"/groups/{group_id}")

    def update_group(
        self,
        group_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        account_role: str | _Unset | None = UNSET,
        resource_version: str | None = None,
    ) -> GroupOut:
        """Change what is given; ``account_role=None`` removes the group's role (left out:
        kept). With ``resource_version``, a group changed meanwhile is refused (409)."""
        fields: dict[str, Any] = {
            "name": name,
            "description": description,
            "resource_version": resource_version,
        }
        fields = {key: value for key, value in fields.items() if value is not None}
        if not isinstance(account_role, _Unset):
            fields["account_role"] = account_role
        body = GroupUpdate.model_validate(fields)
        return self._call(
            GroupOut,
            "POST",
            f"/groups/{group_id}",
            json=body.model_dump(mode="json", exclude_unset=True),
        )

    def delete_group(self, group_id: str, *, resource_version: str | None = None) -> None:
        self._send(
            "DELETE", f"/groups/{group_id}", params=_query(resource_version=resource_version)
        )

    def iter_group_members(
        self, group_id: str, *, page_size: int = WALK_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[GroupMemberOut]:
        """Every member of the group (all pages), by email."""
        return self._walk(
            GroupMemberList,
            f"/groups/{group_id}/members",
            lambda page: page.members,
            {},
            page_size=page_size,
            limit=limit,
        )

    def update_group_members(
        self, group_id: str, *, add: Iterable[str] = (), remove: Iterable[str] = ()
    ) -> GroupOut:
        """Add and remove members by user id (idempotent)."""
        body = GroupMembersChange(add=list(add), remove=list(remove))
        return self._call(
            GroupOut, "POST", f"/groups/{group_id}/members", json=body.model_dump(mode="json")
        )

    def set_group_namespace_permission(
        self, namespace_id: str, group_id: str, permission: str | None
    ) -> GroupOut:
        """Give the group ``permission`` (admin, write, read) on the namespace; None removes
        it."""
        return self._call(
            GroupOut,
            "POST",
            f"/namespaces/{namespace_id}/groups/{group_id}/access",
            json={"permission": permission},
        )

    # Service accounts
    def create_service_account(
        self,
        name: str,
        *,
        description: str = "",
        account_role: str | None = None,
        namespace_id: str | None = None,
        namespace_permission: str | None = None,
    ) -> ServiceAccountOut:
        """Account-wide with ``account_role``, or scoped to ``namespace_id`` with
        ``namespace_permission``."""
        scope = None
        if namespace_id is not None:
            scope = NamespaceScope.model_validate(
                {"namespace_id": namespace_id, "permission": namespace_permission or "read"}
            )
        body = ServiceAccountCreate.model_validate(
            {
                "name": name,
                "description": description,
                "account_role": account_role,
                "namespace_scope": scope,
            }
        )
        return self._call(
            ServiceAccountOut,
            "POST",
            "/service-accounts",
            json=body.model_dump(mode="json", exclude_none=True),
        )

    def iter_service_accounts(
        self, *, name: str | None = None, page_size: int = WALK_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[ServiceAccountOut]:
        """Every service account (all pages), by name (``name``: a name prefix)."""
        return self._walk(
            ServiceAccountList,
            "/service-accounts",
            lambda page: page.service_accounts,
            _query(name=name),
            page_size=page_size,
            limit=limit,
        )

    def list_service_accounts(self) -> ServiceAccountList:
        return self._call(ServiceAccountList, "GET", "/service-accounts")

    def get_service_account(self, service_account_id: str) -> ServiceAccountOut:
        return self._call(ServiceAccountOut, "GET", f"/service-accounts/{service_account_id}")

    def update_service_account(
        self,
        service_account_id: str,
        *,
        resource_version: str,
        name: str | None = None,
        description: str | None = None,
        account_role: str | None = None,
        namespace_permission: str | None = None,
    ) -> ServiceAccountOut:
        """Change what is given; ``resource_version`` as last read (a concurrent change: 409)."""
        body = ServiceAccountUpdate.model_validate(
            {
                "resource_version": resource_version,
                "name": name,
                "description": description,
                "account_role": account_role,
                "namespace_permission": namespace_permission,
            }
        )
        return self._call(
            ServiceAccountOut,
            "POST",
            f"/service-accounts/{service_account_id}",
            json=body.model_dump(mode="json", exclude_none=True),
        )

    def delete_service_account(self, service_account_id: str) -> None:
        self._send("DELETE", f"/service-accounts/{service_account_id}")

    # Declarative onboarding (stratus apply / export)
    def plan(self, spec: AccountSpec, *, prune: bool = False, wait: bool = True) -> Plan:
        """What ``apply(spec)`` would write, read from today's state; nothing is written.
        ``prune``: also delete what the spec's lists no longer name."""
        from controlplane import declarative

        return declarative.plan(self, spec, prune=prune, wait=wait)

    def apply(
        self, spec: AccountSpec, *, dry_run: bool = False, prune: bool = False, wait: bool = True
    ) -> ApplyResult:
        """Make the account match ``spec``: plan, then (unless ``dry_run``) write the plan in
        dependency order, each update with the resource_version read while planning (an
        object changed in between: ``ApplyConflict``). ``wait``: new and changed namespaces
        are ACTIVE before their grants and history sinks are written."""
        from controlplane import declarative

        planned = declarative.plan(self, spec, prune=prune, wait=wait)
        if dry_run:
            return declarative.ApplyResult(planned, [], [])
        return declarative.execute(planned)

    def export(self) -> dict[str, Any]:
        """The account as an ``apply`` document (secrets as ${ENV} references)."""
        from controlplane import declarative

        return declarative.export(self)

    # API keys
    def create_api_key(
        self,
        display_name: str,
        expiry: dt.datetime,
        *,
        service_account_id: str | None = None,
    ) -> ApiKeyCreated:
        """A key for the caller, or for one of the account's service accounts (admins)."""
        body = ApiKeyCreate(
            display_name=display_name,
            expiry=expiry,
            owner_type="service_account" if service_account_id else None,
            owner_id=service_account_id,
        )
        return self._call(
            ApiKeyCreated, "POST", "/api-keys", json=body.model_dump(mode="json", exclude_none=True)
        )

    def iter_api_keys(
        self,
        *,
        owner_id: str | None = None,
        state: str | None = None,
        page_size: int = WALK_PAGE_SIZE,
        limit: int | None = None,
    ) -> Iterator[ApiKeyOut]:
        """Every API key you may read (all pages), newest first; ``state``: enabled|disabled."""
        return self._walk(
            ApiKeyList,
            "/api-keys",
            lambda page: page.api_keys,
            _query(owner_id=owner_id, state=state),
            page_size=page_size,
            limit=limit,
        )

    def list_api_keys(self) -> ApiKeyList:
        return self._call(ApiKeyList, "GET", "/api-keys")

    def get_api_key(self, api_key_id: str) -> ApiKeyOut:
        return self._call(ApiKeyOut, "GET", f"/api-keys/{api_key_id}")

    def disable_api_key(self, api_key_id: str) -> ApiKeyOut:
        return self._call(ApiKeyOut, "POST", f"/api-keys/{api_key_id}/disable")

    def enable_api_key(self, api_key_id: str) -> ApiKeyOut:
        return self._call(ApiKeyOut, "POST", f"/api-keys/{api_key_id}/enable")

    def delete_api_key(self, api_key_id: str) -> None:
        self._send("DELETE", f"/api-keys/{api_key_id}")

    def create_scim_token(self) -> ScimTokenCreated:
        """A new SCIM token for the account's identity provider (shown once); the previous
        one stops working at once."""
        return self._call(ScimTokenCreated, "POST", "/scim-token")

    def get_scim_token(self) -> ScimTokenOut:
        """Whether the account has a SCIM token, and when it was created and last used."""
        return self._call(ScimTokenOut, "GET", "/scim-token")

    def delete_scim_token(self) -> None:
        """Turn SCIM provisioning off: the token stops working at once."""
        self._send("DELETE", "/scim-token")

    def list_audit_logs(
        self,
        *,
        page_size: int = 100,
        page_token: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: dt.datetime | str | None = None,
        until: dt.datetime | str | None = None,
    ) -> AuditEventPage:
        """One page of the account's audit log, newest first."""
        params = _query(
            page_size=page_size,
            page_token=page_token or None,
            **_audit_filters(actor, action, since, until),
        )
        return self._call(AuditEventPage, "GET", "/audit-logs", params=params)

    def iter_audit_logs(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: dt.datetime | str | None = None,
        until: dt.datetime | str | None = None,
        page_size: int = WALK_PAGE_SIZE,
        limit: int | None = None,
    ) -> Iterator[AuditEventOut]:
        """Every audit event (all pages), newest first; ``since`` inclusive, ``until``
        exclusive."""
        return self._walk(
            AuditEventPage,
            "/audit-logs",
            lambda page: page.audit_logs,
            _query(**_audit_filters(actor, action, since, until)),
            page_size=page_size,
            limit=limit,
        )

    def get_audit_log_sink(self) -> AuditLogSinkOut:
        """The account's audit log sink and its health (last hour exported, errors, lag)."""
        return self._call(AuditLogSinkOut, "GET", "/audit-log-sink")

    def set_audit_log_sink(self, sink: AuditLogSinkSet) -> AuditLogSinkOut:
        return self._call(
            AuditLogSinkOut, "PUT", "/audit-log-sink", json=sink.model_dump(mode="json")
        )

    def delete_audit_log_sink(self) -> None:
        self._send("DELETE", "/audit-log-sink")

    def get_group_claims(self) -> GroupClaimsOut:
        """The account's group claims: the OIDC claim, the SAML attribute and the mappings of
        IdP groups to user groups (404 when off)."""
        return self._call(GroupClaimsOut, "GET", "/group-claims")

    def set_group_claims(
        self,
        mappings: Iterable[tuple[str, str]] = (),
        *,
        oidc_claim: str = DEFAULT_CLAIM,
        saml_attribute: str = DEFAULT_CLAIM,
    ) -> GroupClaimsOut:
        """Replace the account's group claims; ``mappings`` are (IdP group, group id) pairs."""
        body = GroupClaimsSet(
            oidc_claim=oidc_claim,
            saml_attribute=saml_attribute,
            mappings=[
                GroupClaimMappingIn(idp_group=idp_group, group_id=group_id)
                for idp_group, group_id in mappings
            ],
        )
        return self._call(GroupClaimsOut, "PUT", "/group-claims", json=body.model_dump())

    def delete_group_claims(self) -> None:
        """Turn group claims off (sign-ins no longer change memberships)."""
        self._send("DELETE", "/group-claims")

    def get_usage(
        self, start: dt.date | str, end: dt.date | str, *, namespace_id: str | None = None
    ) -> UsageOut:
        """Usage per namespace, UTC day and kind from ``start`` to ``end`` (both inclusive)."""
        params = {"start": str(start), "end": str(end)}
        if namespace_id is not None:
            params["namespace_id"] = namespace_id
        return self._call(UsageOut, "GET", "/usage", params=params)

    def iter_invoices(
        self,
        *,
        status: str | None = None,
        month: str | None = None,
        page_size: int = WALK_PAGE_SIZE,
        limit: int | None = None,
    ) -> Iterator[InvoiceSummary]:
        """Every invoice (all pages), newest month first; ``month`` as YYYY-MM."""
        return self._walk(
            InvoiceList,
            "/invoices",
            lambda page: page.invoices,
            _query(status=status, month=month),
            page_size=page_size,
            limit=limit,
        )

    def get_insights(
        self, namespace_id: str, *, window: str = "1h", include_resolved: bool = False
    ) -> InsightsOut:
        """The namespace's workload findings over ``window`` (1h, 24h or 7d) and its last
        analysis; with ``include_resolved``, those resolved in the last 7 days too."""
        params = {"window": window, "include_resolved": str(include_resolved).lower()}
        return self._call(InsightsOut, "GET", f"/namespaces/{namespace_id}/insights", params=params)

    def get_metrics(self, *, namespace_id: str | None = None) -> str:
        """The tenant metrics endpoint's OpenMetrics text: the namespaces this key may read
        (or ``namespace_id`` only), as Prometheus scrapes it (docs/teams.md)."""
        params = {} if namespace_id is None else {"namespace_id": namespace_id}
        return self._checked("GET", "/metrics", params=params).text

    def list_invoices(self) -> InvoiceList:
        return self._call(InvoiceList, "GET", "/invoices")

    def get_invoice(self, invoice_id: str) -> InvoiceOut:
        return self._call(InvoiceOut, "GET", f"/invoices/{invoice_id}")

    def download_invoice(self, invoice_id: str, *, file_format: str = "json") -> bytes:
        """The invoice as a JSON or CSV file's bytes."""
        response = self._checked(
            "GET", f"/invoices/{invoice_id}/download", params={"format": file_format}
        )
        return response.content

    def create_credit_note(self, invoice_id: str, *, amount: str, reason: str) -> CreditNoteOut:
        body = CreditNoteCreate(amount=amount, reason=reason)
        return self._call(
            CreditNoteOut, "POST", f"/invoices/{invoice_id}/credit-notes", json=body.model_dump()
        )

    def get_plan(self) -> AccountPlanOut:
        return self._call(AccountPlanOut, "GET", "/billing/plan")

    def set_account_plan(
        self, account_id: str, plan: str, *, effective_from: dt.date | None = None
    ) -> AccountPlanOut:
        body = PlanSet(plan=plan, effective_from=effective_from)
        return self._call(
            AccountPlanOut,
            "POST",
            f"/accounts/{account_id}/plan",
            json=body.model_dump(mode="json"),
        )

    def grant_credit(
        self,
        account_id: str,
        *,
        amount: str,
        description: str,
        expires_on: dt.date | None = None,
    ) -> CreditOut:
        body = CreditGrant(amount=amount, description=description, expires_on=expires_on)
        return self._call(
            CreditOut, "POST", f"/accounts/{account_id}/credits", json=body.model_dump(mode="json")
        )

    def iter_credits(
        self, *, page_size: int = WALK_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[CreditOut]:
        """Every prepaid credit of the account (all pages), oldest first."""
        return self._walk(
            CreditList,
            "/billing/credits",
            lambda page: page.credits,
            {},
            page_size=page_size,
            limit=limit,
        )

    def list_credits(self) -> CreditList:
        return self._call(CreditList, "GET", "/billing/credits")

    def get_export_sink(self) -> ExportSinkOut:
        return self._call(ExportSinkOut, "GET", "/billing/export-sink")

    def set_export_sink(self, sink: ExportSinkSet) -> ExportSinkOut:
        return self._call(
            ExportSinkOut, "PUT", "/billing/export-sink", json=sink.model_dump(mode="json")
        )

    def delete_export_sink(self) -> None:
        self._send("DELETE", "/billing/export-sink")

    def iter_gateways(
        self, *, page_size: int = WALK_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[GatewayOut]:
        """Operator: every registered gateway (all pages), by id."""
        return self._walk(
            GatewayList,
            "/internal/gateways",
            lambda page: page.gateways,
            {},
            page_size=page_size,
            limit=limit,
        )

    def get_history_export_sink(self, namespace_id: str) -> HistoryExportSinkOut:
        """The namespace's workflow history export sink and the export's progress."""
        return self._call(HistoryExportSinkOut, "GET", f"/namespaces/{namespace_id}/export-sink")

    def set_history_export_sink(
        self, namespace_id: str, sink: HistoryExportSinkSet
    ) -> HistoryExportSinkOut:
        return self._call(
            HistoryExportSinkOut,
            "PUT",
            f"/namespaces/{namespace_id}/export-sink",
            json=sink.model_dump(mode="json"),
        )

    def delete_history_export_sink(self, namespace_id: str) -> None:
        self._send("DELETE", f"/namespaces/{namespace_id}/export-sink")

    def validate_history_export_sink(self, namespace_id: str) -> HistoryExportSinkValidation:
        """Write and delete a probe object in the sink: ok, or S3's error."""
        return self._call(
            HistoryExportSinkValidation, "POST", f"/namespaces/{namespace_id}/export-sink/validate"
        )

    def list_gateways(self) -> GatewayList:
        """Operator: every registered gateway (namespaces become ACTIVE once all serve them)."""
        return self._call(GatewayList, "GET", "/internal/gateways")

    def deregister_gateway(self, gateway_id: str) -> None:
        """Operator: stop waiting for a gateway that is gone for good."""
        self._send("DELETE", f"/internal/gateways/{gateway_id}")

    def register_cell(self, cell: CellRegister) -> CellOut:
        """Operator: register a Temporal cluster as an external cell (probed first)."""
        return self._call(
            CellOut, "POST", "/cells", json=cell.model_dump(mode="json", exclude_none=True)
        )

    def iter_cells(
        self, *, state: str | None = None, page_size: int = WALK_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[CellOut]:
        """Operator: every cell (all pages), by id; ``state`` narrows it."""
        return self._walk(
            CellList,
            "/cells",
            lambda page: page.cells,
            _query(state=state),
            page_size=page_size,
            limit=limit,
        )

    def iter_operations(
        self,
        *,
        state: str | None = None,
        operation_type: str | None = None,
        page_size: int = WALK_PAGE_SIZE,
        limit: int | None = None,
    ) -> Iterator[AsyncOperationOut]:
        """Every async operation you may read (all pages), newest first."""
        return self._walk(
            AsyncOperationList,
            "/operations",
            lambda page: page.operations,
            _query(state=state, type=operation_type),
            page_size=page_size,
            limit=limit,
        )

    def list_cells(self) -> CellList:
        return self._call(CellList, "GET", "/cells")

    def get_cell(self, cell_id: str) -> CellOut:
        """Operator: one cell with the namespaces placed on it."""
        return self._call(CellOut, "GET", f"/cells/{cell_id}")

    def drain_cell(self, cell_id: str) -> CellOut:
        return self._call(CellOut, "POST", f"/cells/{cell_id}/drain")

    def undrain_cell(self, cell_id: str) -> CellOut:
        return self._call(CellOut, "POST", f"/cells/{cell_id}/undrain")

    def deregister_cell(self, cell_id: str) -> None:
        self._send("DELETE", f"/cells/{cell_id}")

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


def _audit_filters(
    actor: str | None,
    action: str | None,
    since: dt.datetime | str | None,
    until: dt.datetime | str | None,
) -> dict[str, object]:
    def moment(value: dt.datetime | str | None) -> str | None:
        return value.isoformat() if isinstance(value, dt.datetime) else value

    return {"actor": actor, "action": action, "since": moment(since), "until": moment(until)}
