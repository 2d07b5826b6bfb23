"""SCIM 2.0 provisioning (RFC 7643/7644) of one account's users and groups.

The account's SCIM client (Okta, Entra ID) authenticates with the account's SCIM token
(:mod:`controlplane.scim.tokens`), which alone names the account: it acts as the principal
``scim`` of that account and reaches only that account's users and groups.

Resources travel as plain JSON documents. A PATCH is applied to the resource's current document
and the result is written like a PUT, so both share one validation. Attribute names are
case-insensitive (lowercased on the way in).

Users: ``userName`` is the user's email (lowercased); new users get the ``read`` account role
and no invitation expiry (the IdP vouches for them; the first sign-in accepts the invitation).
``active: false`` deprovisions at once: the user's web sessions are deleted, its enabled API
keys disabled and sign-in refused (403 ``user-deactivated``); ``active: true`` restores
sign-in, the keys stay disabled. The last active owner can be neither deactivated nor deleted.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement
from sqlalchemy.ext.asyncio import AsyncSession

from auth import AccountRole, Principal, PrincipalKind
from controlplane.audit import service as audit
from controlplane.groups import service as group_service
from controlplane.groups.repository import GroupRepository
from controlplane.groups.schemas import MemberSource
from controlplane.kit import fields
from controlplane.kit.errors import AlreadyExists, Conflict, InvalidField, NotFound
from controlplane.models import User, UserGroup
from controlplane.quotas import service as quotas
from controlplane.quotas.limits import Quota
from controlplane.scim.errors import InvalidFilter, InvalidSyntax, NoTarget, ScimError
from controlplane.scim.filters import Equals, Path, parse_filter, parse_path
from controlplane.scim.repository import ScimRepository
from controlplane.users import service as user_service

SCIM_ACTOR = "scim"
# The role of a user the SCIM client creates: least privilege; groups (or an admin) grant more.
NEW_USER_ROLE = AccountRole.READ
MAX_PAGE = 200

Document = dict[str, Any]
T = TypeVar("T")


def scim_principal(account_id: str) -> Principal:
    """The account's SCIM client, as the audit log names it."""
    return Principal(
        kind=PrincipalKind.SERVICE_ACCOUNT,
        id=SCIM_ACTOR,
        account_id=account_id,
        account_role=None,
        display=SCIM_ACTOR,
    )


def lowered(value: Any) -> Any:
    """``value`` with every object key lowercased (SCIM names are case-insensitive)."""
    if isinstance(value, dict):
        return {str(key).lower(): lowered(item) for key, item in value.items()}
    if isinstance(value, list):
        return [lowered(item) for item in value]
    return value


def _text(doc: Document, key: str, *, max_length: int = 200) -> str | None:
    value = doc.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ScimError(f"{key} must be a string")
    return fields.free_text(value, field=key, max_length=max_length)


def _bool(value: Any, key: str) -> bool:
    # Entra ID sends booleans as the strings "True" and "False" in PATCH values.
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ScimError(f"{key} must be true or false")
    return value


@dataclass(frozen=True)
class Page(Generic[T]):
    total: int
    start_index: int
    rows: list[T]


@dataclass(frozen=True)
class Operations(Generic[T]):
    """What the routes of one resource type call: one set of routes serves Users
    (:data:`USERS`) and Groups (:data:`GROUPS`)."""

    page: Callable[[AsyncSession, Principal, SearchRequest], Awaitable[Page[T]]]
    get: Callable[[AsyncSession, Principal, str], Awaitable[T]]
    create: Callable[[AsyncSession, Principal, Document], Awaitable[T]]
    replace: Callable[[AsyncSession, Principal, str, Document], Awaitable[T]]
    patch: Callable[[AsyncSession, Principal, str, list[Document]], Awaitable[T]]
    delete: Callable[[AsyncSession, Principal, str], Awaitable[None]]


def _window(start_index: int | None, count: int | None) -> tuple[int, int]:
    start = max(start_index or 1, 1)
    size = MAX_PAGE if count is None else min(max(count, 0), MAX_PAGE)
    return start, size


Filters = dict[str, Callable[[Equals], ColumnElement[bool]]]


def _where(filters: Filters, kind: str, equals: Equals | None) -> list[ColumnElement[bool]]:
    """The SQL condition of ``equals`` on ``kind`` (users or groups); an attribute ``kind``
    cannot be filtered by is refused."""
    if equals is None:
        return []
    column = filters.get(equals.attribute)
    if column is None:
        raise InvalidFilter(
            f"{kind} can be filtered by {', '.join(sorted(filters))}, not {equals.attribute}"
        )
    return [column(equals)]


# Users


def user_document(user: User) -> Document:
    return {
        "username": user.email,
        "externalid": user.external_id,
        "displayname": user.display_name,
        "active": user.active,
        "name": {"givenname": user.given_name, "familyname": user.family_name},
    }


_USER_FILTERS: Filters = {
    "username": lambda f: User.email == str(f.value).lower(),
    "externalid": lambda f: User.external_id == f.value,
    "id": lambda f: User.id == f.value,
    "displayname": lambda f: User.display_name == f.value,
    "emails.value": lambda f: User.email == str(f.value).lower(),
    "emails": lambda f: User.email == str(f.value).lower(),
    "active": lambda f: User.active.is_(bool(f.value)),
}


async def list_users(
    session: AsyncSession, principal: Principal, query: SearchRequest
) -> Page[User]:
    equals = parse_filter(query.filter_text) if query.filter_text else None
    where = _where(_USER_FILTERS, "users", equals)
    start, size = _window(query.start_index, query.count)
    total, rows = await ScimRepository(session, principal).users(
        where, offset=start - 1, limit=size
    )
    return Page(total, start, rows)


async def get_user(session: AsyncSession, principal: Principal, user_id: str) -> User:
    user = await ScimRepository(session, principal).user(user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


def _user_name(doc: Document) -> str:
    value = doc.get("username")
    if not isinstance(value, str) or not value.strip():
        raise ScimError("userName is required: the user's email address")
    try:
        return fields.email(value, field="userName")
    except InvalidField:
        raise ScimError(
            f"userName {value!r} is not an email address: Stratus users are their email "
            "(map userName to the user's email in the identity provider)"
        ) from None


async def create_user(session: AsyncSession, principal: Principal, doc: Document) -> User:
    repository = ScimRepository(session, principal)
    email = _user_name(doc)
    if await repository.user_by_email(email) is not None:
        raise AlreadyExists(f"{email} is already a user of this account")
    await quotas.enforce(session, repository.account_id, Quota.USERS)
    user = User(
        id=str(uuid.uuid4()),
        account_id=repository.account_id,
        email=email,
        account_role=NEW_USER_ROLE.value,
        resource_version=str(uuid.uuid4()),
        invitation_expires_at=None,
        active=True,
    )
    _set_user_attributes(user, doc)
    if "active" in doc and doc["active"] is not None and not _bool(doc["active"], "active"):
        user.active = False
    repository.add(user)
    audit.record(
        session,
        principal,
        action="user.create",
        target=user.id,
        account_id=user.account_id,
        details={"email": email, "account_role": user.account_role, "active": user.active},
    )
    await session.flush()
    return user


def _set_user_attributes(user: User, doc: Document) -> None:
    user.external_id = _text(doc, "externalid", max_length=256)
    user.display_name = _text(doc, "displayname")
    name = doc.get("name") or {}
    if not isinstance(name, dict):
        raise ScimError("name must be an object with givenName and familyName")
    user.given_name = _text(name, "givenname")
    user.family_name = _text(name, "familyname")


async def replace_user(
    session: AsyncSession, principal: Principal, user_id: str, doc: Document
) -> User:
    """PUT: the user becomes ``doc`` (attributes it omits are cleared; ``active`` omitted
    stays as it is)."""
    repository = ScimRepository(session, principal)
    user = await get_user(session, principal, user_id)
    email = _user_name(doc)
    changes: dict[str, Any] = {}
    if email != user.email:
        if await repository.user_by_email(email) is not None:
            raise AlreadyExists(f"{email} is already a user of this account")
        changes["email"] = {"from": user.email, "to": email}
        user.email = email
    before = user_document(user)
    _set_user_attributes(user, doc)
    after = user_document(user)
    changes.update({key: after[key] for key in after if after[key] != before[key]})
    if changes:
        user.resource_version = str(uuid.uuid4())
        audit.record(
            session,
            principal,
            action="user.update",
            target=user.id,
            account_id=user.account_id,
            details={"changes": changes},
        )
    active = doc.get("active")
    if active is not None:
        await set_active(session, principal, user, _bool(active, "active"))
    await session.flush()
    return user


async def patch_user(
    session: AsyncSession, principal: Principal, user_id: str, operations: list[Document]
) -> User:
    user = await get_user(session, principal, user_id)
    doc = apply_patch(user_document(user), operations, multi_valued={"emails"})
    if doc.get("active") is None:
        doc["active"] = True  # an unassigned active is the default: active
    return await replace_user(session, principal, user_id, doc)


async def set_active(session: AsyncSession, principal: Principal, user: User, active: bool) -> None:
    """Deactivate (sessions deleted, enabled API keys disabled, sign-in refused) or reactivate
    (sign-in allowed again; the keys stay disabled)."""
    if user.active == active:
        return
    repository = ScimRepository(session, principal)
    if not active:
        await _guard_last_owner(repository, user, "deactivated")
        sessions = await repository.delete_web_sessions_of(user)
        keys = await repository.enabled_keys_of(user)
        for key in keys:
            key.disabled = True
        user.active = False
        details: dict[str, Any] = {
            "email": user.email,
            "web_sessions_deleted": sessions,
            "api_keys_disabled": sorted(key.id for key in keys),
        }
    else:
        user.active = True
        details = {"email": user.email}
    user.resource_version = str(uuid.uuid4())
    audit.record(
        session,
        principal,
        action="user.reactivate" if active else "user.deactivate",
        target=user.id,
        account_id=user.account_id,
        details=details,
    )


async def _guard_last_owner(repository: ScimRepository, user: User, what: str) -> None:
    if user.account_role != AccountRole.OWNER.value or not user.active:
        return
    await quotas.lock_account(repository.session, user.account_id)
    if await repository.other_active_owners(user) == 0:
        raise Conflict(
            f"{user.email} is the account's last active owner and cannot be {what}; make "
            "another user owner in Stratus first"
        )


async def delete_user(session: AsyncSession, principal: Principal, user_id: str) -> None:
    """The user is removed with its API keys, web sessions, memberships and namespace
    permissions (as ``DELETE /api/v1/users/{id}``)."""
    repository = ScimRepository(session, principal)
    user = await get_user(session, principal, user_id)
    await _guard_last_owner(repository, user, "deleted")
    await repository.delete_web_sessions_of(user)
    await user_service.remove_user(session, principal, user)


USERS = Operations(list_users, get_user, create_user, replace_user, patch_user, delete_user)


# Groups


@dataclass(frozen=True)
class GroupView:
    group: UserGroup
    members: list[User]


def group_document(view: GroupView) -> Document:
    return {
        "displayname": view.group.name,
        "externalid": view.group.external_id,
        "members": [{"value": user.id} for user in view.members],
    }


async def _views(repository: ScimRepository, groups: list[UserGroup]) -> list[GroupView]:
    by_group: dict[str, list[User]] = {group.id: [] for group in groups}
    for group_id, user in await repository.members([group.id for group in groups]):
        by_group[group_id].append(user)
    return [GroupView(group, by_group[group.id]) for group in groups]


_GROUP_FILTERS: Filters = {
    "displayname": lambda f: UserGroup.name == f.value,
    "externalid": lambda f: UserGroup.external_id == f.value,
    "id": lambda f: UserGroup.id == f.value,
}


async def list_groups(
    session: AsyncSession, principal: Principal, query: SearchRequest
) -> Page[GroupView]:
    equals = parse_filter(query.filter_text) if query.filter_text else None
    where = _where(_GROUP_FILTERS, "groups", equals)
    start, size = _window(query.start_index, query.count)
    repository = ScimRepository(session, principal)
    total, rows = await repository.groups(where, offset=start - 1, limit=size)
    return Page(total, start, await _views(repository, rows))


async def _group(session: AsyncSession, principal: Principal, group_id: str) -> UserGroup:
    group = await GroupRepository(session, principal).get(group_id)
    if group is None:
        raise NotFound(f"group {group_id} not found")
    return group


async def get_group(session: AsyncSession, principal: Principal, group_id: str) -> GroupView:
    group = await _group(session, principal, group_id)
    return (await _views(ScimRepository(session, principal), [group]))[0]


async def _unique_group_name(session: AsyncSession, principal: Principal, name: str) -> None:
    if await GroupRepository(session, principal).get_by_name(name) is not None:
        raise AlreadyExists(f"a group named {name!r} already exists in this account")


def _group_name(doc: Document) -> str:
    value = doc.get("displayname")
    if not isinstance(value, str) or not value.strip():
        raise ScimError("displayName is required: the group's name")
    return fields.display_name(value.strip(), field="displayName")


def _member_ids(doc: Document) -> list[str]:
    members = doc.get("members") or []
    if not isinstance(members, list):
        raise ScimError("members must be a list of {value: user id}")
    ids: list[str] = []
    for member in members:
        value = member.get("value") if isinstance(member, dict) else None
        if not isinstance(value, str):
            raise ScimError("each member needs a value: the user's id")
        if value not in ids:
            ids.append(value)
    return ids


# The group writes are the groups service's own (quota, audit): SCIM checks and reads the
# document, and answers SCIM errors, before it calls them.


async def create_group(session: AsyncSession, principal: Principal, doc: Document) -> GroupView:
    name = _group_name(doc)
    await _unique_group_name(session, principal, name)
    external_id = _text(doc, "externalid", max_length=256)
    group = await group_service.add_group(
        session, principal, name, description="", account_role=None, external_id=external_id
    )
    await _set_members(session, principal, group, _member_ids(doc))
    return await get_group(session, principal, group.id)


async def _set_members(
    session: AsyncSession, principal: Principal, group: UserGroup, wanted: list[str]
) -> None:
    """The group's members become ``wanted`` (user ids of the account, else ``invalidValue``);
    the memberships made have source ``scim``."""
    repository = GroupRepository(session, principal)
    found = await repository.users(wanted)
    unknown = [user_id for user_id in wanted if user_id not in found]
    if unknown:
        raise ScimError(f"no user {unknown[0]} in this account", field="members")
    current = {user.id: user for user, _ in await repository.members(group.id)}
    kept = set(wanted)
    await group_service.write_members(
        session,
        principal,
        group,
        joining=[found[user_id] for user_id in wanted if user_id not in current],
        leaving=[user for user_id, user in current.items() if user_id not in kept],
        source=MemberSource.SCIM,
    )


async def replace_group(
    session: AsyncSession, principal: Principal, group_id: str, doc: Document
) -> GroupView:
    group = await _group(session, principal, group_id)
    name = _group_name(doc)
    if name != group.name:
        await _unique_group_name(session, principal, name)
    external_id = _text(doc, "externalid", max_length=256)
    current = {"name": group.name, "external_id": group.external_id}
    wanted = {"name": name, "external_id": external_id}
    await group_service.change_fields(
        session,
        principal,
        group,
        {field: value for field, value in wanted.items() if value != current[field]},
    )
    await _set_members(session, principal, group, _member_ids(doc))
    return await get_group(session, principal, group_id)


async def patch_group(
    session: AsyncSession, principal: Principal, group_id: str, operations: list[Document]
) -> GroupView:
    view = await get_group(session, principal, group_id)
    doc = apply_patch(group_document(view), operations, multi_valued={"members"})
    return await replace_group(session, principal, group_id, doc)


async def delete_group(session: AsyncSession, principal: Principal, group_id: str) -> None:
    """The group, its memberships and its namespace permissions go."""
    await group_service.remove_group(session, principal, await _group(session, principal, group_id))


GROUPS = Operations(list_groups, get_group, create_group, replace_group, patch_group, delete_group)


# Search (RFC 7644 §3.4.3)

SEARCH_REQUEST = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@dataclass(frozen=True)
class SearchRequest:
    """A ``POST …/.search`` body: the query a GET carries in its URL."""

    filter_text: str | None
    start_index: int | None
    count: int | None
    attributes: str | None
    excluded: str | None


def _search_int(doc: Document, key: str, name: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSyntax(f"{name} must be an integer")
    return value


def _search_names(doc: Document, key: str, name: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidSyntax(f"{name} must be a list of attribute names")
    return ",".join(value) or None


def search_request(doc: Document) -> SearchRequest:
    """``doc`` (names lowercased) read as a SearchRequest; anything else is refused
    (``invalidSyntax``), and so is ``sortBy``: this server does not sort (its
    ServiceProviderConfig says so)."""
    schemas = doc.get("schemas")
    if not isinstance(schemas, list) or SEARCH_REQUEST not in schemas:
        raise InvalidSyntax(
            f"a search body is a SearchRequest: schemas must be [{SEARCH_REQUEST!r}]"
        )
    if doc.get("sortby") is not None or doc.get("sortorder") is not None:
        raise ScimError("sortBy and sortOrder are not supported: this server does not sort")
    filter_text = doc.get("filter")
    if filter_text is not None and not isinstance(filter_text, str):
        raise InvalidSyntax("filter must be a string")
    return SearchRequest(
        filter_text=filter_text or None,
        start_index=_search_int(doc, "startindex", "startIndex"),
        count=_search_int(doc, "count", "count"),
        attributes=_search_names(doc, "attributes", "attributes"),
        excluded=_search_names(doc, "excludedattributes", "excludedAttributes"),
    )


async def search(
    session: AsyncSession, principal: Principal, query: SearchRequest
) -> Page[User | GroupView]:
    """``POST /.search``: the account's users, then its groups (each in the order of its own
    list), paged over the two together. A filter on an attribute one type lacks matches none of
    that type; one that neither type has is refused (``invalidFilter``)."""
    equals = parse_filter(query.filter_text) if query.filter_text else None
    if equals is not None and not (
        equals.attribute in _USER_FILTERS or equals.attribute in _GROUP_FILTERS
    ):
        names = ", ".join(sorted(_USER_FILTERS.keys() | _GROUP_FILTERS.keys()))
        raise InvalidFilter(f"users and groups can be filtered by {names}, not {equals.attribute}")
    start, size = _window(query.start_index, query.count)
    repository = ScimRepository(session, principal)
    user_total, users = 0, list[User]()
    if equals is None or equals.attribute in _USER_FILTERS:
        where = _where(_USER_FILTERS, "users", equals)
        user_total, users = await repository.users(where, offset=start - 1, limit=size)
    group_total, groups = 0, list[UserGroup]()
    if equals is None or equals.attribute in _GROUP_FILTERS:
        where = _where(_GROUP_FILTERS, "groups", equals)
        group_total, groups = await repository.groups(
            where, offset=max(start - 1 - user_total, 0), limit=size - len(users)
        )
    rows: list[User | GroupView] = [*users, *await _views(repository, groups)]
    return Page(user_total + group_total, start, rows)


# PATCH


def apply_patch(doc: Document, operations: list[Document], *, multi_valued: set[str]) -> Document:
    """``doc`` after the PATCH ``operations`` (RFC 7644 §3.5.2), names lowercased. Attributes
    of extensions this server does not keep are ignored, as on POST and PUT."""
    if not operations:
        raise InvalidSyntax("a PATCH needs at least one operation in Operations")
    for operation in operations:
        if not isinstance(operation, dict):
            raise InvalidSyntax("each operation is an object with op, path and value")
        op = str(operation.get("op", "")).lower()
        if op not in ("add", "replace", "remove"):
            raise InvalidSyntax(f"op must be add, replace or remove, not {operation.get('op')!r}")
        raw_path = operation.get("path")
        value = lowered(operation.get("value"))
        if raw_path is None or raw_path == "":
            if op == "remove":
                raise NoTarget("a remove operation needs a path")
            if not isinstance(value, dict):
                raise InvalidSyntax("an operation without a path needs an object value")
            for key, item in value.items():
                if key.startswith("urn:"):
                    continue
                _apply(doc, op, Path(key, None, None), item, multi_valued)
            continue
        if not isinstance(raw_path, str):
            raise InvalidSyntax("path must be a string")
        if (
            raw_path.lower().startswith("urn:")
            and ":2.0:user:" not in raw_path.lower()
            and (":2.0:group:" not in raw_path.lower())
        ):
            continue
        _apply(doc, op, parse_path(raw_path), value, multi_valued)
    return doc


def _matches(item: Any, selector: Equals) -> bool:
    return isinstance(item, dict) and item.get(selector.attribute) == selector.value


def _apply(doc: Document, op: str, path: Path, value: Any, multi_valued: set[str]) -> None:
    attribute = path.attribute
    if "." in attribute:
        attribute, _, sub = attribute.partition(".")
        path = Path(attribute, path.value_filter, sub)
    if attribute in multi_valued:
        _apply_multi(doc, op, path, value)
        return
    if path.value_filter is not None:
        raise ScimError(f"{attribute} is not multi-valued: it takes no [filter]")
    if path.sub_attribute is not None:
        parent = doc.get(attribute)
        if not isinstance(parent, dict):
            parent = {}
            doc[attribute] = parent
        if op == "remove":
            parent.pop(path.sub_attribute, None)
        else:
            parent[path.sub_attribute] = value
        return
    if op == "remove":
        doc[attribute] = None
    elif isinstance(value, dict) and isinstance(doc.get(attribute), dict):
        doc[attribute] = {**doc[attribute], **value}
    else:
        doc[attribute] = value


def _values(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _apply_multi(doc: Document, op: str, path: Path, value: Any) -> None:
    current: list[Any] = list(doc.get(path.attribute) or [])
    selector = path.value_filter
    if op == "remove":
        if selector is not None:
            kept = [item for item in current if not _matches(item, selector)]
        elif value is not None:
            # Entra ID: {"op": "remove", "path": "members", "value": [{"value": id}]}.
            gone = {item.get("value") for item in _values(value) if isinstance(item, dict)}
            kept = [item for item in current if item.get("value") not in gone]
        else:
            kept = []
        doc[path.attribute] = kept
        return
    if selector is not None:
        targets = [item for item in current if _matches(item, selector)]
        if not targets:
            raise NoTarget(f"no {path.attribute} value matches the path's filter")
        for item in targets:
            if path.sub_attribute is not None:
                item[path.sub_attribute] = value
            elif isinstance(value, dict):
                item.update(value)
        doc[path.attribute] = current
        return
    incoming = _values(value)
    if op == "replace":
        doc[path.attribute] = incoming
        return
    known = {item.get("value") for item in current if isinstance(item, dict)}
    doc[path.attribute] = current + [
        item for item in incoming if not (isinstance(item, dict) and item.get("value") in known)
    ]
