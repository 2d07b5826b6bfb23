"""Verified API-key principals, remembered for a moment by each API process.

Authentication reads the key, its owner and the owner's namespace permissions on every
request: most of what a read costs. :class:`CredentialCache` keeps a verified principal for
``credential_cache_seconds`` (and never past its key's ``expires_at``), keyed by the SHA-256 of
the presented token (the token itself is never held). Refusals are not cached: a spray of
unknown keys cannot fill the cache or push out the keys in use.

Revocation. A committed change that can end or narrow a credential (an API key, user, service
account, user group or membership, namespace permission or account written; a namespace
deleted) clears every cache of the process, so in the process that made it the next request
is checked against the database. Other API processes learn it when their entries expire:
within the TTL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from auth import Principal
from controlplane.kit.db import utcnow
from controlplane.models import (
    Account,
    ApiKey,
    Namespace,
    NamespaceAccess,
    ServiceAccount,
    User,
    UserGroup,
    UserGroupMember,
)

DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal
    valid_until: dt.datetime


class CredentialCache:
    """Principals by the SHA-256 of their token, each for at most ``ttl_seconds`` (as ``now()``
    tells) and never past its key's expiry; the least recently used go beyond ``max_entries``.
    ``ttl_seconds`` 0 turns it off."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        now: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.ttl = dt.timedelta(seconds=ttl_seconds)
        self.max_entries = max_entries
        self.now = now
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        # Counts clears: a principal read from the database before a revocation committed
        # is not stored after it (see :meth:`put`).
        self.generation = 0
        _LIVE_CACHES.add(self)

    @property
    def enabled(self) -> bool:
        return self.ttl > dt.timedelta(0) and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> Principal | None:
        """The principal verified for ``token`` within the TTL, else None."""
        if not self._entries:
            return None
        key = self._key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.valid_until <= self.now():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry.principal

    def put(
        self,
        token: str,
        principal: Principal,
        expires_at: dt.datetime | None,
        *,
        generation: int,
    ) -> None:
        """Remember a principal verified for ``token`` by a read that began at ``generation``
        (read it before the database): if a revocation cleared the cache since, the read
        may predate it and is not kept."""
        if not self.enabled or generation != self.generation:
            return
        valid_until = self.now() + self.ttl
        if expires_at is not None:
            valid_until = min(valid_until, expires_at)
        key = self._key(token)
        self._entries[key] = _Entry(principal, valid_until)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()


# Every cache of this process, so a commit anywhere in it reaches them all.
_LIVE_CACHES: weakref.WeakSet[CredentialCache] = weakref.WeakSet()

# What a principal is built from: writing any of these may end or narrow a credential.
_CREDENTIAL_MODELS: tuple[type[Any], ...] = (
    ApiKey,
    User,
    ServiceAccount,
    NamespaceAccess,
    Account,
    UserGroup,
    UserGroupMember,
)
_CREDENTIAL_TABLES = frozenset(model.__tablename__ for model in _CREDENTIAL_MODELS)
# Deleting a namespace deletes its permissions (ON DELETE CASCADE, unseen by the session).
_CASCADING_TABLES = frozenset({Namespace.__tablename__})
_CHANGED = "credentials_changed"


def revoke_all() -> None:
    """Forget every cached principal of this process."""
    for cache in list(_LIVE_CACHES):
        cache.clear()


@event.listens_for(Session, "after_flush")
def _note_flushed(session: Session, _flush: UOWTransaction) -> None:
    # In after_flush, new/dirty/deleted still list what this flush wrote.
    if any(isinstance(row, _CREDENTIAL_MODELS) for row in (*session.new, *session.dirty)) or any(
        isinstance(row, (*_CREDENTIAL_MODELS, Namespace)) for row in session.deleted
    ):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    # Bulk UPDATE/DELETE/INSERT statements (``session.execute(delete(ApiKey)...)``) bypass the
    # flush.
    if state.is_select:
        return
    table = getattr(getattr(state.statement, "table", None), "name", None)
    if table in _CREDENTIAL_TABLES or (state.is_delete and table in _CASCADING_TABLES):
        state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _revoke_on_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        revoke_all()
