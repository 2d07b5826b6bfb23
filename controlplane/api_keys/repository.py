from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import and_, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from auth import NamespacePermission, PrincipalKind
from controlplane.kit.paging import Page, PageRequest, fetch_page
from controlplane.kit.tenancy import TenantRepository
from controlplane.models import ApiKey, NamespaceAccess, ServiceAccount, User


@dataclass
class Credential:
    """A key with its owner (a user or a service account, as ``owner_type`` says) and the
    owner's permission on each namespace, read together."""

    api_key: ApiKey
    user: User | None = None
    service_account: ServiceAccount | None = None
    namespace_permissions: dict[str, NamespacePermission] = field(default_factory=dict)


# Built once: constructing a four-table statement costs as much as running it.
_CREDENTIAL = (
    select(ApiKey, User, ServiceAccount, NamespaceAccess)
    .outerjoin(
        User, and_(ApiKey.owner_type == PrincipalKind.USER.value, User.id == ApiKey.owner_id)
    )
    .outerjoin(
        ServiceAccount,
        and_(
            ApiKey.owner_type == PrincipalKind.SERVICE_ACCOUNT.value,
            ServiceAccount.id == ApiKey.owner_id,
        ),
    )
    .outerjoin(
        NamespaceAccess,
        and_(
            NamespaceAccess.principal_kind == ApiKey.owner_type,
            NamespaceAccess.principal_id == ApiKey.owner_id,
        ),
    )
    .where(ApiKey.id == bindparam("key_id"))
)


class ApiKeyRepository(TenantRepository):
    """The API keys of the caller's account."""

    async def get(self, key_id: str) -> ApiKey | None:
        statement = self._scoped(select(ApiKey).where(ApiKey.id == key_id), ApiKey.account_id)
        return (await self.session.execute(statement)).scalar_one_or_none()

    async def page(
        self, page: PageRequest, *, owner_id: str | None, disabled: bool | None
    ) -> Page[ApiKey]:
        """A page of the account's keys, newest first; only ``owner_id``'s and only disabled
        (or enabled) ones when given."""
        statement = self._scoped(select(ApiKey), ApiKey.account_id)
        if owner_id is not None:
            statement = statement.where(ApiKey.owner_id == owner_id)
        if disabled is not None:
            statement = statement.where(ApiKey.disabled.is_(disabled))
        return await fetch_page(
            self.session,
            statement,
            page=page,
            order=(ApiKey.created_at, ApiKey.id),
            descending=True,
            list_name="api-keys",
            account_id=self.account_id,
            filters={"owner_id": owner_id, "disabled": disabled},
        )

    async def list_all(self, *, owner_id: str | None) -> list[ApiKey]:
        """The account's keys, newest first; only ``owner_id``'s when given."""
        statement = self._scoped(
            select(ApiKey).order_by(ApiKey.created_at.desc(), ApiKey.id), ApiKey.account_id
        )
        if owner_id is not None:
            statement = statement.where(ApiKey.owner_id == owner_id)
        return list((await self.session.execute(statement)).scalars())

    def add(self, api_key: ApiKey) -> None:
        self._add(api_key)

    async def delete(self, api_key: ApiKey) -> None:
        await self._delete(api_key)

    async def delete_all_of(self, *, owner_type: str, owner_id: str) -> None:
        await self.session.execute(
            self._scoped(
                delete(ApiKey).where(ApiKey.owner_type == owner_type, ApiKey.owner_id == owner_id),
                ApiKey.account_id,
            )
        )


class SystemApiKeyRepository:
    """Authentication (a presented token before there is a principal) and keys issued without
    a caller: the operator's, and an account owner's first key."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key_id: str) -> ApiKey | None:
        return await self.session.get(ApiKey, key_id)

    async def get_credential(self, key_id: str) -> Credential | None:
        """The key, its owner and the owner's namespace permissions in one statement (one
        row per permission): authentication runs on every request, and each round trip to
        the database costs more than the rest of a read."""
        rows = await self.session.execute(_CREDENTIAL, {"key_id": key_id})
        credential: Credential | None = None
        for api_key, user, service_account, access in rows:
            if credential is None:
                credential = Credential(api_key, user, service_account)
            if access is not None:
                credential.namespace_permissions[access.namespace_id] = access.permission
        return credential

    def add(self, api_key: ApiKey) -> None:
        self.session.add(api_key)
