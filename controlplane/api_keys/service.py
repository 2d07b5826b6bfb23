"""API keys: issuing, managing and turning a presented bearer token into a principal.

A key is owned by a user or a service account of one account (or, once, by the operator).
Disabled, expired and deleted keys stop authenticating at once in the API process that made
the change, and within ``credential_cache_seconds`` (default 1 s) in every other API process:
each process keeps a verified principal that long (``controlplane.api_keys.cache``). Deleting a
key removes its row; the audit log keeps its history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from types import MappingProxyType

from sqlalchemy.ext.asyncio import AsyncSession

from auth import (
    Action,
    MalformedApiKey,
    Principal,
    PrincipalKind,
    Resource,
    api_key_matches,
    authorize,
    effective_namespace_permissions,
    generate_api_key,
    parse_api_key,
)
from controlplane.access.repository import SystemNamespaceAccessRepository
from controlplane.api_keys.cache import CredentialCache
from controlplane.api_keys.repository import ApiKeyRepository, SystemApiKeyRepository
from controlplane.audit import service as audit
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import (
    Forbidden,
    InvalidField,
    NotFound,
    Unauthenticated,
)
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import ApiKey, User
from controlplane.quotas import service as quotas
from controlplane.quotas.limits import Quota
from controlplane.service_accounts.repository import ServiceAccountRepository
from controlplane.states import ApiKeyState
from controlplane.users.repository import UserRepository

OWNER_KEY_LIFETIME = dt.timedelta(days=365)
MAX_KEY_LIFETIME = dt.timedelta(days=730)


async def issue_operator_key(session: AsyncSession) -> str:
    """Create an operator key (no account, no expiry) and return its token."""
    new = generate_api_key()
    SystemApiKeyRepository(session).add(
        ApiKey(
            id=new.key_id,
            token_hash=new.token_hash,
            owner_type=PrincipalKind.OPERATOR.value,
            owner_id=None,
            account_id=None,
            display_name="operator",
            expires_at=None,
        )
    )
    audit.record(session, None, action="api_key.create", target=new.key_id, account_id=None)
    await session.flush()
    return new.token


async def issue_user_key(
    session: AsyncSession,
    user: User,
    *,
    display_name: str,
    lifetime: dt.timedelta,
    now: Callable[[], dt.datetime] = utcnow,
) -> tuple[ApiKey, str]:
    """A key for ``user`` without a caller (the owner's bootstrap key at account creation),
    valid for ``lifetime`` from ``now()``."""
    new = generate_api_key()
    api_key = ApiKey(
        id=new.key_id,
        token_hash=new.token_hash,
        owner_type=PrincipalKind.USER.value,
        owner_id=user.id,
        account_id=user.account_id,
        display_name=display_name,
        expires_at=now() + lifetime,
    )
    SystemApiKeyRepository(session).add(api_key)
    await session.flush()
    return api_key, new.token


async def operator_key_valid(session: AsyncSession, token: str) -> bool:
    try:
        principal = await authenticate(session, token)
    except Unauthenticated:
        return False
    return principal.kind is PrincipalKind.OPERATOR


def _resource(api_key: ApiKey) -> Resource:
    return Resource(account_id=api_key.account_id, owner_id=api_key.owner_id)


async def _owner(
    session: AsyncSession, principal: Principal, owner_type: str | None, owner_id: str | None
) -> tuple[PrincipalKind, str]:
    """Whom a new key belongs to: the caller by default, or a service account of the caller's
    account (for principals allowed to manage every key of the account)."""
    if owner_type is None and owner_id is None:
        if principal.kind not in (PrincipalKind.USER, PrincipalKind.SERVICE_ACCOUNT):
            raise Forbidden("this credential cannot own API keys")
        return principal.kind, principal.id
    if owner_type is None or owner_id is None:
        raise InvalidField("give both owner_type and owner_id, or neither", field="owner_id")
    kind = PrincipalKind(owner_type)
    if owner_id == principal.id and kind is principal.kind:
        return kind, owner_id
    if kind is PrincipalKind.USER:
        raise Forbidden("a user's API keys can only be created by that user")
    service_account = await ServiceAccountRepository(session, principal).get(owner_id)
    if service_account is None:
        raise NotFound(f"service account {owner_id} not found", field="owner_id")
    return kind, owner_id


async def create(
    session: AsyncSession,
    principal: Principal,
    *,
    display_name: str,
    expiry: dt.datetime,
    owner_type: str | None,
    owner_id: str | None,
) -> tuple[ApiKey, str]:
    """Issue a key; the token is returned once and only its hash is stored."""
    require(principal, Action.API_KEY_CREATE, refusal="this credential may not create API keys")
    kind, owner = await _owner(session, principal, owner_type, owner_id)
    repository = ApiKeyRepository(session, principal)
    resource = Resource(account_id=repository.account_id, owner_id=owner)
    require(
        principal,
        Action.API_KEY_CREATE,
        resource,
        refusal="this credential may only create API keys for itself",
    )
    display_name = fields.display_name(display_name, field="display_name")
    now = utcnow()
    expires_at = expiry if expiry.tzinfo is not None else expiry.replace(tzinfo=dt.UTC)
    if expires_at <= now:
        raise InvalidField("expiry must be in the future", field="expiry")
    if expires_at > now + MAX_KEY_LIFETIME:
        raise InvalidField("expiry must be at most 2 years (730 days) ahead", field="expiry")
    # Per owner, disabled keys included: enabling one again never needs a check.
    await quotas.enforce(
        session, repository.account_id, Quota.API_KEYS_PER_PRINCIPAL, owner=(kind, owner)
    )
    new = generate_api_key()
    api_key = ApiKey(
        id=new.key_id,
        token_hash=new.token_hash,
        owner_type=kind.value,
        owner_id=owner,
        account_id=repository.account_id,
        display_name=display_name,
        expires_at=expires_at,
    )
    repository.add(api_key)
    audit.record(
        session,
        principal,
        action="api_key.create",
        target=api_key.id,
        account_id=api_key.account_id,
        details={
            "owner_type": kind.value,
            "owner_id": owner,
            "expires_at": expires_at.isoformat(),
        },
    )
    await session.flush()
    return api_key, new.token


async def page(
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    *,
    owner_id: str | None = None,
    state: ApiKeyState | None = None,
) -> Page[ApiKey]:
    """A page of the keys the caller may read (every key of the account for those who manage
    all keys, else its own), newest first; ``owner_id`` and ``state`` narrow it."""
    require(principal, Action.API_KEY_READ, refusal="this credential may not read API keys")
    repository = ApiKeyRepository(session, principal)
    everyone = Resource.whole_account(repository.account_id)
    if not authorize(principal, Action.API_KEY_READ, everyone):
        if owner_id is not None and owner_id != principal.id:
            return Page(rows=[], next_page_token="")
        owner_id = principal.id
    elif owner_id is not None:
        await _known_owner(session, principal, owner_id)
    disabled = None if state is None else state is ApiKeyState.DISABLED
    return await repository.page(page, owner_id=owner_id, disabled=disabled)


async def _known_owner(session: AsyncSession, principal: Principal, owner_id: str) -> None:
    """Refuse an owner that is none of the account's users or service accounts (another
    account's answers exactly as an unknown one)."""
    if owner_id == principal.id:
        return
    if await UserRepository(session, principal).get(owner_id) is not None:
        return
    if await ServiceAccountRepository(session, principal).get(owner_id) is not None:
        return
    raise NotFound(f"owner {owner_id} not found", field="owner_id")


async def list_all(session: AsyncSession, principal: Principal) -> list[ApiKey]:
    """Every key of the account for those who manage all keys, else the caller's own."""
    require(principal, Action.API_KEY_READ, refusal="this credential may not read API keys")
    repository = ApiKeyRepository(session, principal)
    everyone = Resource.whole_account(repository.account_id)
    owner_id = None if authorize(principal, Action.API_KEY_READ, everyone) else principal.id
    return await repository.list_all(owner_id=owner_id)


async def _visible(
    session: AsyncSession, principal: Principal, key_id: str, action: Action
) -> ApiKey:
    """The key, if the caller may see it; another account's key (or, for a principal that
    manages only its own keys, another owner's) is not found."""
    api_key = await ApiKeyRepository(session, principal).get(key_id)
    if api_key is None or not authorize(principal, Action.API_KEY_READ, _resource(api_key)):
        raise NotFound(f"API key {key_id} not found")
    require(
        principal,
        action,
        _resource(api_key),
        refusal=f"this credential may not perform {action.value} on {key_id}",
    )
    return api_key


async def get(session: AsyncSession, principal: Principal, key_id: str) -> ApiKey:
    return await _visible(session, principal, key_id, Action.API_KEY_READ)


async def set_disabled(
    session: AsyncSession, principal: Principal, *, key_id: str, disabled: bool
) -> ApiKey:
    """Disable or enable a key. Disabled, it stops authenticating at once in this API process
    (the commit clears its credential cache) and within ``credential_cache_seconds`` in the
    others; the gateway learns it within its own cache's second."""
    api_key = await _visible(session, principal, key_id, Action.API_KEY_UPDATE)
    if api_key.disabled == disabled:
        return api_key
    api_key.disabled = disabled
    audit.record(
        session,
        principal,
        action="api_key.disable" if disabled else "api_key.enable",
        target=key_id,
        account_id=api_key.account_id,
    )
    await session.flush()
    return api_key


async def delete(session: AsyncSession, principal: Principal, *, key_id: str) -> None:
    """Delete a key: its row is removed, so it stops authenticating (at once in this API
    process, within ``credential_cache_seconds`` in the others)."""
    api_key = await _visible(session, principal, key_id, Action.API_KEY_DELETE)
    await ApiKeyRepository(session, principal).delete(api_key)
    audit.record(
        session,
        principal,
        action="api_key.delete",
        target=key_id,
        account_id=api_key.account_id,
        details={"owner_type": api_key.owner_type, "owner_id": api_key.owner_id},
    )
    await session.flush()


async def authenticate(
    session: AsyncSession,
    token: str,
    *,
    now: Callable[[], dt.datetime] = utcnow,
    cache: CredentialCache | None = None,
) -> Principal:
    """Resolve a bearer token; every failure is the same 401 so keys cannot be probed. A key
    is expired from its ``expires_at`` on, as ``now()`` tells. With ``cache``, a principal
    verified within its TTL is answered without reading the database (refusals always are
    read)."""
    generation = 0
    if cache is not None:
        cached = cache.get(token)
        if cached is not None:
            return cached
        generation = cache.generation
    principal, expires_at = await _verify(session, token, now)
    if cache is not None:
        cache.put(token, principal, expires_at, generation=generation)
    return principal


def _operator(api_key: ApiKey) -> Principal:
    return Principal(
        kind=PrincipalKind.OPERATOR,
        id=api_key.id,
        account_id=None,
        account_role=None,
        display="operator",
        api_key_id=api_key.id,
    )


async def operator_of_key(
    session: AsyncSession, key_id: str, *, now: Callable[[], dt.datetime] = utcnow
) -> Principal | None:
    """The operator, while ``key_id`` is a valid operator key (an operator web session ends
    with the key that signed it in); None otherwise."""
    api_key = await SystemApiKeyRepository(session).get(key_id)
    if (
        api_key is None
        or api_key.owner_type != PrincipalKind.OPERATOR.value
        or api_key.disabled
        or (api_key.expires_at is not None and api_key.expires_at <= now())
    ):
        return None
    return _operator(api_key)


async def _verify(
    session: AsyncSession, token: str, now: Callable[[], dt.datetime]
) -> tuple[Principal, dt.datetime | None]:
    """The token's principal and its key's expiry, read from the database."""
    refused = Unauthenticated("the API key is missing, unknown, expired or revoked")
    try:
        key_id = parse_api_key(token)
    except MalformedApiKey:
        raise refused from None
    credential = await SystemApiKeyRepository(session).get_credential(key_id)
    if credential is None:
        raise refused
    api_key = credential.api_key
    if not api_key_matches(token, api_key.token_hash) or api_key.disabled:
        raise refused
    if api_key.expires_at is not None and api_key.expires_at <= now():
        raise refused
    if api_key.owner_type == PrincipalKind.OPERATOR.value:
        return _operator(api_key), api_key.expires_at
    # Read-only: a cached principal is shared by the requests that present its key.
    permissions = MappingProxyType(credential.namespace_permissions)
    if api_key.owner_type == PrincipalKind.SERVICE_ACCOUNT.value:
        service_account = credential.service_account
        if service_account is None or service_account.account_id != api_key.account_id:
            raise refused
        return Principal(
            kind=PrincipalKind.SERVICE_ACCOUNT,
            id=service_account.id,
            account_id=service_account.account_id,
            account_role=service_account.account_role,
            display=f"service-account:{service_account.name}",
            api_key_id=api_key.id,
            namespace_scope=service_account.namespace_id,
            namespace_permissions=permissions,
        ), api_key.expires_at
    user = credential.user
    if user is None or user.account_id != api_key.account_id or not user.active:
        raise refused
    groups = await SystemNamespaceAccessRepository(session).group_access_of(user.id)
    if groups.namespace_permissions:
        permissions = MappingProxyType(
            effective_namespace_permissions(
                credential.namespace_permissions, groups.namespace_permissions
            )
        )
    return Principal(
        kind=PrincipalKind.USER,
        id=user.id,
        account_id=user.account_id,
        account_role=user.account_role,
        display=f"user:{user.email}",
        api_key_id=api_key.id,
        namespace_permissions=permissions,
        group_roles=groups.roles,
    ), api_key.expires_at
