"""An account's group claims, and the sync of a signing-in user's ``"idp"`` memberships.

Configuration (owners and admins): the OIDC claim and the SAML attribute that list a user's
groups at the identity provider, and which IdP group maps to which user group. At each sign-in
of a user of an account with a configuration, the groups its IdP asserts (mapped) become the
user's ``"idp"`` memberships, exactly: missing ones are added, ones no longer asserted removed;
``"manual"`` and ``"scim"`` memberships are never touched. An absent claim or attribute counts
as no groups (the user loses its ``"idp"`` memberships): an IdP that stops sending groups must
not leave stale access behind. Without a configuration, sign-in leaves memberships alone.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal, unsafe_character
from controlplane.audit import service as audit
from controlplane.group_claims.repository import GroupClaimsRepository, SystemGroupClaimsRepository
from controlplane.group_claims.schemas import GroupClaimsSet
from controlplane.kit.authorization import require
from controlplane.kit.db import utcnow
from controlplane.kit.errors import InvalidField, NotFound
from controlplane.models import GroupClaimConfig, GroupClaimMapping, User, UserGroupMember

logger = logging.getLogger("stratus.group_claims")

MAX_MAPPINGS = 500
# Values read from one claim or attribute; the rest are ignored, so a hostile or misconfigured
# IdP cannot make a sign-in do unbounded work.
MAX_ASSERTED_GROUPS = 1000
MAX_NAME_LENGTH = 256
MAX_IDP_GROUP_LENGTH = 256
# OIDC claim names (``groups``, Auth0's ``https://example.com/groups``) and SAML attribute names
# (Entra ID's ``http://schemas.microsoft.com/ws/2008/06/identity/claims/groups``, OIDs).
_NAME = re.compile(r"[A-Za-z0-9_.:/#@-]+")
IDP_SOURCE = "idp"
MANAGE_REFUSAL = "this credential may not manage group claims"
NOT_CONFIGURED = "group claims are not configured for this account"


@dataclass(frozen=True)
class GroupClaims:
    config: GroupClaimConfig
    mappings: list[tuple[GroupClaimMapping, str]]


def _name(value: str, field: str) -> str:
    if not 1 <= len(value) <= MAX_NAME_LENGTH or not _NAME.fullmatch(value):
        raise InvalidField(
            f"{field} must be 1-{MAX_NAME_LENGTH} characters of letters, digits and _ . : / # @ -",
            field=field,
        )
    return value


def _idp_group(value: str, field: str) -> str:
    unsafe = unsafe_character(value)
    if unsafe is not None:
        raise InvalidField(f"{field} contains {unsafe}", field=field)
    value = unicodedata.normalize("NFC", value)
    if not 1 <= len(value) <= MAX_IDP_GROUP_LENGTH:
        raise InvalidField(f"{field} must be 1-{MAX_IDP_GROUP_LENGTH} characters", field=field)
    return value


async def get(session: AsyncSession, principal: Principal) -> GroupClaims:
    require(principal, Action.GROUP_CLAIMS_MANAGE, refusal=MANAGE_REFUSAL)
    repository = GroupClaimsRepository(session, principal)
    config = await repository.config()
    if config is None:
        raise NotFound(NOT_CONFIGURED)
    return GroupClaims(config=config, mappings=await repository.mappings())


async def put(session: AsyncSession, principal: Principal, body: GroupClaimsSet) -> GroupClaims:
    """Replace the account's whole configuration (mappings included); audited."""
    require(principal, Action.GROUP_CLAIMS_MANAGE, refusal=MANAGE_REFUSAL)
    oidc_claim = _name(body.oidc_claim, "oidc_claim")
    saml_attribute = _name(body.saml_attribute, "saml_attribute")
    if len(body.mappings) > MAX_MAPPINGS:
        raise InvalidField(f"at most {MAX_MAPPINGS} mappings", field="mappings")
    pairs: dict[tuple[str, str], None] = {}
    for index, mapping in enumerate(body.mappings):
        idp_group = _idp_group(mapping.idp_group, f"mappings[{index}].idp_group")
        pairs[(idp_group, mapping.group_id)] = None
    repository = GroupClaimsRepository(session, principal)
    wanted = {group_id for _, group_id in pairs}
    known = await repository.group_ids_among(wanted)
    for index, mapping in enumerate(body.mappings):
        if mapping.group_id not in known:
            # Another account's group answers the same as one that does not exist.
            raise NotFound(
                f"no group {mapping.group_id!r} in this account",
                field=f"mappings[{index}].group_id",
            )
    config = await repository.config()
    if config is None:
        config = GroupClaimConfig(account_id=repository.account_id)
        repository.add(config)
    config.oidc_claim = oidc_claim
    config.saml_attribute = saml_attribute
    config.updated_at = utcnow()  # also when only the mappings changed
    await session.flush()
    await repository.delete_mappings()
    for idp_group, group_id in pairs:
        repository.add(
            GroupClaimMapping(
                account_id=repository.account_id, idp_group=idp_group, group_id=group_id
            )
        )
    audit.record(
        session,
        principal,
        action="group_claims.update",
        target=f"group_claims:{repository.account_id}",
        account_id=repository.account_id,
        details={
            "oidc_claim": oidc_claim,
            "saml_attribute": saml_attribute,
            "mappings": [{"idp_group": idp, "group_id": group} for idp, group in pairs],
        },
    )
    await session.flush()
    return GroupClaims(config=config, mappings=await repository.mappings())


async def delete(session: AsyncSession, principal: Principal) -> None:
    """Turn group claims off: sign-ins leave memberships alone from now on (the ``"idp"``
    memberships already made stay until a group or user is removed); audited."""
    require(principal, Action.GROUP_CLAIMS_MANAGE, refusal=MANAGE_REFUSAL)
    repository = GroupClaimsRepository(session, principal)
    config = await repository.config()
    if config is None:
        raise NotFound(NOT_CONFIGURED)
    await repository.delete_config(config)
    audit.record(
        session,
        principal,
        action="group_claims.delete",
        target=f"group_claims:{repository.account_id}",
        account_id=repository.account_id,
    )
    await session.flush()


def asserted_groups(value: object) -> list[str]:
    """The group names a claim or attribute value carries: a list of strings or one string;
    anything else (numbers, objects, nested lists) is no group. At most
    :data:`MAX_ASSERTED_GROUPS` values are read; values no mapping could name are dropped."""
    values: Iterable[object]
    if isinstance(value, str):
        values = [value]
    elif isinstance(value, list | tuple):
        values = value[:MAX_ASSERTED_GROUPS]
    else:
        return []
    return [
        unicodedata.normalize("NFC", item)
        for item in values
        if isinstance(item, str) and 1 <= len(item) <= MAX_IDP_GROUP_LENGTH
    ]


async def _apply(
    session: AsyncSession, user: User, idp_groups: list[str]
) -> tuple[list[str], list[str]]:
    repository = SystemGroupClaimsRepository(session)
    wanted = await repository.mapped_group_ids(user.account_id, set(idp_groups))
    memberships = await repository.memberships(user.account_id, user.id)
    from_idp = {m.group_id for m in memberships if m.source == IDP_SOURCE}
    from_others = {m.group_id for m in memberships if m.source != IDP_SOURCE}
    added = sorted(wanted - from_idp - from_others)
    removed = sorted(from_idp - wanted)
    async with session.begin_nested():
        for group_id in added:
            repository.add_membership(
                UserGroupMember(
                    group_id=group_id,
                    user_id=user.id,
                    account_id=user.account_id,
                    source=IDP_SOURCE,
                )
            )
        if removed:
            await repository.remove_idp_memberships(user.account_id, user.id, removed)
    return added, removed


async def sync_memberships(
    session: AsyncSession,
    user: User,
    *,
    protocol: str,
    provider: str,
    claims: Mapping[str, object],
) -> None:
    """Make ``user``'s ``"idp"`` memberships the groups that the sign-in's ``claims`` (ID-token
    claims, or SAML attributes name → values) map to, when its account configured group
    claims; one audit event when something changed. Runs before the session's principal is
    built, so the sign-in already holds the access it grants."""
    repository = SystemGroupClaimsRepository(session)
    config = await repository.config(user.account_id)
    if config is None:
        return
    name = config.oidc_claim if protocol == "oidc" else config.saml_attribute
    idp_groups = asserted_groups(claims.get(name))
    for attempt in (1, 2):
        try:
            added, removed = await _apply(session, user, idp_groups)
            break
        except IntegrityError:
            # A concurrent sign-in of the same user, or a group deleted meanwhile: read again.
            if attempt == 2:
                logger.warning("group claims of user %s not synced: concurrent change", user.id)
                return
    if not added and not removed:
        return
    event = audit.record(
        session,
        None,
        action="group_claims.sync",
        target=f"user:{user.id}",
        account_id=user.account_id,
        details={
            "method": protocol,
            "provider": provider,
            "added": added,
            "removed": removed,
        },
    )
    event.actor = f"user:{user.email}"
    await session.flush()
