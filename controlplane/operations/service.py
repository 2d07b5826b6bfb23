from __future__ import annotations

import re
import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from auth import Action, Principal, Resource, authorize
from controlplane.audit import service as audit
from controlplane.kit import fields
from controlplane.kit.authorization import require
from controlplane.kit.db import after_commit, utcnow
from controlplane.kit.errors import Conflict, InvalidField, NotFound
from controlplane.kit.paging import Page, PageRequest
from controlplane.models import AsyncOperation, OperationState
from controlplane.operations.repository import OperationRepository, SystemOperationRepository
from controlplane.operations.starter import OperationStarter

_OPERATION_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def validate_operation_id(operation_id: str) -> None:
    if not _OPERATION_ID_RE.match(operation_id):
        raise InvalidField(
            "async_operation_id must be 1-64 letters, digits, '-' or '_'",
            field="async_operation_id",
        )


async def find_existing(
    session: AsyncSession, principal: Principal, operation_id: str, operation_type: str
) -> AsyncOperation | None:
    """Idempotency: a client retrying with its own ``async_operation_id`` gets the same operation.
    Ids are per account: another account's use of the same id is invisible here (it neither
    blocks this account nor tells it the id exists); an id this account already used for
    something else is a conflict."""
    existing = await OperationRepository(session, principal).get(operation_id)
    if existing is None:
        return None
    if existing.operation_type != operation_type:
        raise Conflict("async_operation_id is already in use", field="async_operation_id")
    return existing


async def retried(
    session: AsyncSession,
    principal: Principal,
    async_operation_id: str | None,
    operation_type: str,
    resource_id: str,
) -> AsyncOperation | None:
    """The operation a client started before with this ``async_operation_id`` for the same
    resource (its retry gets the same answer), None for a new id; any other use of the id is a
    conflict."""
    if async_operation_id is None:
        return None
    validate_operation_id(async_operation_id)
    existing = await find_existing(session, principal, async_operation_id, operation_type)
    if existing is not None and existing.resource_id != resource_id:
        raise Conflict("async_operation_id is already in use", field="async_operation_id")
    return existing


def create(
    repository: OperationRepository | SystemOperationRepository,
    starter: OperationStarter,
    *,
    account_id: str,
    operation_type: str,
    resource_id: str,
    operation_id: str | None,
) -> AsyncOperation:
    """Record a PENDING operation (through the caller's repository: the system one only on
    the operator's path) and start its workflow once the unit of work commits. The internal id
    (the workflow's) is always generated: the client's ``operation_id`` is unique in its account
    only."""
    internal_id = str(uuid.uuid4())
    operation = AsyncOperation(
        id=internal_id,
        async_operation_id=operation_id or internal_id,
        account_id=account_id,
        operation_type=operation_type,
        resource_id=resource_id,
        state=OperationState.PENDING,
    )
    repository.add(operation)

    async def start() -> None:
        await starter.start(operation.id, operation_type, resource_id, account_id=account_id)

    after_commit(repository.session, start)
    return operation


def _in_every_account(principal: Principal) -> bool:
    """Whether the policy lets the caller follow operations in every account (the operator,
    who runs the installation)."""
    return authorize(principal, Action.OPERATION_READ, Resource.every_account())


async def get(session: AsyncSession, principal: Principal, operation_id: str) -> AsyncOperation:
    """The operation known to the caller's clients as ``operation_id`` (its
    ``async_operation_id``)."""
    require(principal, Action.OPERATION_READ, refusal="this credential may not read operations")
    operation: AsyncOperation | None
    if _in_every_account(principal):
        # Ids are per account: an id that several accounts chose is ambiguous here.
        repository = SystemOperationRepository(session)
        found = await repository.in_any_account(operation_id)
        if len(found) > 1:
            raise Conflict(
                f"several accounts have an operation {operation_id}", field="operation_id"
            )
        operation = found[0] if found else await repository.get(operation_id)
    else:
        operation = await OperationRepository(session, principal).get(operation_id)
    if operation is None or not authorize(
        principal,
        Action.OPERATION_READ,
        Resource(account_id=operation.account_id, namespace_id=operation.resource_id),
    ):
        raise NotFound(f"operation {operation_id} not found")
    return operation


async def page(
    session: AsyncSession,
    principal: Principal,
    page: PageRequest,
    *,
    state: OperationState | None = None,
    operation_type: str | None = None,
) -> Page[AsyncOperation]:
    """A page of the operations the caller may read (every account's for the operator),
    newest first; ``state`` and ``operation_type`` (e.g. ``namespace.create``) narrow it."""
    require(principal, Action.OPERATION_READ, refusal="this credential may not read operations")
    kind = fields.free_text(operation_type, field="type", max_length=64) if operation_type else None
    if _in_every_account(principal):
        return await SystemOperationRepository(session).page(page, state=state, operation_type=kind)
    return await OperationRepository(session, principal).page_readable(
        page, state=state, operation_type=kind
    )


async def list_recent(session: AsyncSession, principal: Principal) -> list[AsyncOperation]:
    require(principal, Action.OPERATION_READ, refusal="this credential may not read operations")
    if _in_every_account(principal):
        return await SystemOperationRepository(session).list_recent()
    return await OperationRepository(session, principal).list_readable()


async def latest_for(
    session: AsyncSession, principal: Principal, resource_id: str
) -> AsyncOperation | None:
    """The newest operation on ``resource_id`` the caller may read (None when there is none,
    or it is another account's, or the caller may not read that namespace's operations): one
    resource's own latest, however busy its account is."""
    require(principal, Action.OPERATION_READ, refusal="this credential may not read operations")
    if _in_every_account(principal):
        return await SystemOperationRepository(session).latest_for(resource_id)
    return await OperationRepository(session, principal).latest_for(resource_id)


async def mark_in_progress(session: AsyncSession, operation_id: str) -> OperationState | None:
    """The worker's first step of every operation workflow: PENDING becomes IN_PROGRESS (a
    replayed step leaves a later state alone). Returns the state, None when the operation
    (by internal id) does not exist."""
    operation = await SystemOperationRepository(session).get(operation_id)
    if operation is None:
        return None
    if operation.state == OperationState.PENDING:
        operation.state = OperationState.IN_PROGRESS
    return operation.state


async def finish(
    session: AsyncSession, operation_id: str, state: OperationState, reason: str | None
) -> AsyncOperation | None:
    """The worker's last step: the operation (by internal id) ends in ``state`` with an audit
    event, once; an operation already ended is left as it is. Returns the operation, None when
    it does not exist."""
    operation = await SystemOperationRepository(session).get(operation_id)
    if operation is None or operation.state in (OperationState.FULFILLED, OperationState.FAILED):
        return operation
    operation.state = state
    operation.failure_reason = reason
    operation.finished_at = utcnow()
    audit.record(
        session,
        None,
        action=f"operation.{state.value.lower()}",
        target=operation.async_operation_id,  # the id the account's clients know
        account_id=operation.account_id,
        outcome="success" if state == OperationState.FULFILLED else "failure",
        details={"operation_type": operation.operation_type, "reason": reason},
    )
    return operation
