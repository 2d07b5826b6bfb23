"""The account's SCIM token: created (which revokes the previous one at once), read (whether
it exists and when it was last used, never the token) and deleted (SCIM off); and the
authentication of a presented token, which names the account."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal, api_key_matches, hash_api_key
from controlplane.audit import service as audit
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import NotFound, Unauthenticated
from controlplane.models import ScimToken
from controlplane.scim.repository import ScimRepository, SystemScimTokenRepository
from controlplane.scim.service import scim_principal

TOKEN_PREFIX = "stratus_scim_"  # noqa: S105 (a prefix, not a secret)
# ``last_used_at`` is written at most this often: not a write per provisioning request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


async def create(session: AsyncSession, principal: Principal) -> tuple[ScimToken, str]:
    """A new token (returned once, only its hash stored); the previous one stops working."""
    require(principal, Action.SCIM_TOKEN_MANAGE, refusal="this credential may not manage SCIM")
    repository = ScimRepository(session, principal)
    previous = await repository.token()
    if previous is not None:
        await repository.delete(previous)
        await session.flush()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ScimToken(
        id=str(uuid.uuid4()),
        account_id=repository.account_id,
        token_hash=hash_api_key(token),
        last_used_at=None,
    )
    repository.add(row)
    audit.record(
        session,
        principal,
        action="scim_token.create",
        target=row.id,
        account_id=row.account_id,
        details={"replaced": previous.id if previous is not None else None},
    )
    await session.flush()
    return row, token


async def get(session: AsyncSession, principal: Principal) -> ScimToken | None:
    require(principal, Action.SCIM_TOKEN_MANAGE, refusal="this credential may not manage SCIM")
    return await ScimRepository(session, principal).token()


async def delete(session: AsyncSession, principal: Principal) -> None:
    require(principal, Action.SCIM_TOKEN_MANAGE, refusal="this credential may not manage SCIM")
    repository = ScimRepository(session, principal)
    row = await repository.token()
    if row is None:
        raise NotFound("the account has no SCIM token")
    await repository.delete(row)
    audit.record(
        session, principal, action="scim_token.delete", target=row.id, account_id=row.account_id
    )
    await session.flush()


async def authenticate(session: AsyncSession, authorization: str | None) -> Principal:
    """The SCIM client of the account whose token is presented (``Bearer <token>``); every
    failure is the same 401."""
    refused = Unauthenticated("the SCIM token is missing, unknown or revoked")
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX):
        raise refused
    row = await SystemScimTokenRepository(session).by_hash(hash_api_key(token))
    if row is None or not api_key_matches(token, row.token_hash):
        raise refused
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return scim_principal(row.account_id)
