"""Issuing API keys and turning a presented bearer token into a principal."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from auth import (
    MalformedApiKey,
    Principal,
    PrincipalKind,
    api_key_matches,
    generate_api_key,
    parse_api_key,
)
from controlplane.api_keys.repository import ApiKeyRepository
from controlplane.audit import service as audit
from controlplane.kit.db import utcnow
from controlplane.kit.errors import Unauthenticated
from controlplane.models import ApiKey, User

OWNER_KEY_LIFETIME = dt.timedelta(days=365)


async def issue_operator_key(session: AsyncSession) -> str:
    """Create an operator key (no account, no expiry) and return its token."""
    new = generate_api_key()
    ApiKeyRepository(session).add(
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
    session: AsyncSession, user: User, *, display_name: str, lifetime: dt.timedelta
) -> tuple[ApiKey, str]:
    new = generate_api_key()
    api_key = ApiKey(
        id=new.key_id,
        token_hash=new.token_hash,
        owner_type=PrincipalKind.USER.value,
        owner_id=user.id,
        account_id=user.account_id,
        display_name=display_name,
        expires_at=utcnow() + lifetime,
    )
    ApiKeyRepository(session).add(api_key)
    await session.flush()
    return api_key, new.token


async def operator_key_valid(session: AsyncSession, token: str) -> bool:
    try:
        principal = await authenticate(session, token)
    except Unauthenticated:
        return False
    return principal.kind is PrincipalKind.OPERATOR


async def disable(session: AsyncSession, principal: Principal | None, key_id: str) -> None:
    """Revoke a key: it stops authenticating at once."""
    api_key = await ApiKeyRepository(session).get(key_id)
    if api_key is None:
        return
    api_key.disabled = True
    audit.record(
        session, principal, action="api_key.disable", target=key_id, account_id=api_key.account_id
    )
    await session.flush()


async def authenticate(session: AsyncSession, token: str) -> Principal:
    """Resolve a bearer token; every failure is the same 401 so keys cannot be probed."""
    refused = Unauthenticated("the API key is missing, unknown, expired or revoked")
    try:
        key_id = parse_api_key(token)
    except MalformedApiKey:
        raise refused from None
    repository = ApiKeyRepository(session)
    api_key = await repository.get(key_id)
    if api_key is None or not api_key_matches(token, api_key.token_hash) or api_key.disabled:
        raise refused
    if api_key.expires_at is not None and api_key.expires_at <= utcnow():
        raise refused
    if api_key.owner_type == PrincipalKind.OPERATOR.value:
        return Principal(
            kind=PrincipalKind.OPERATOR,
            id=api_key.id,
            account_id=None,
            account_role=None,
            display="operator",
            api_key_id=api_key.id,
        )
    user = await repository.get_user(api_key.owner_id or "")
    if user is None:
        raise refused
    return Principal(
        kind=PrincipalKind.USER,
        id=user.id,
        account_id=user.account_id,
        account_role=user.account_role,
        display=f"user:{user.email}",
        api_key_id=api_key.id,
    )
