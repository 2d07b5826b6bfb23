"""One error base class and its RFC 9457 problem+json rendering."""

from __future__ import annotations

import errno
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

PROBLEM_BASE = "https://stratus.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"

logger = logging.getLogger("stratus.api.errors")


class Problem(BaseModel):
    """An RFC 9457 problem: every error the API answers has this body."""

    type: str = Field(description="Stable URI naming the kind of problem")
    title: str
    status: int
    detail: str = Field(description="What went wrong and what to fix")
    field: str | None = Field(None, description="The request field at fault, if one is")
    instance: str | None = Field(None, description="The request path")
    request_id: str | None = Field(
        None, description="Correlation id of an unexpected error (quote it to the operator)"
    )


class StratusError(Exception):
    """Base for every domain error; ``slug`` becomes the stable problem ``type``."""

    status: int = 500
    slug: str = "internal"
    title: str = "Internal error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        # RFC 9457 extension members (e.g. a quota's name, limit and usage).
        self.extensions: dict[str, Any] = {}
        self.headers: dict[str, str] = {}

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.message,
        }
        if self.field is not None:
            body["field"] = self.field
        body.update(self.extensions)
        if instance is not None:
            body["instance"] = instance
        return body


class InvalidField(StratusError):
    status = 400
    slug = "invalid-field"
    title = "A field is invalid"


class AddressNotAllowed(InvalidField):
    """A URL the service would connect to resolves to an address it may not reach."""

    slug = "address-not-allowed"
    title = "The address is not allowed"


class Unauthenticated(StratusError):
    status = 401
    slug = "unauthenticated"
    title = "Missing, unknown or revoked credentials"


class Forbidden(StratusError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class CsrfRejected(Forbidden):
    slug = "csrf"
    title = "Missing or wrong CSRF token"


class AccountSuspended(Forbidden):
    """The caller's account is suspended (or being deleted): its API is read-only."""

    slug = "account-suspended"
    title = "The account is suspended"


class NotFound(StratusError):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(StratusError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class AlreadyExists(Conflict):
    slug = "already-exists"
    title = "Already exists"


class BodyTooLarge(StratusError):
    status = 413
    slug = "body-too-large"
    title = "The request body is too large"


class QuotaExceeded(Conflict):
    """A count quota of the account (namespaces, users, ...) is reached: remove something or
    ask the operator for more."""

    slug = "quota-exceeded"
    title = "An account quota would be exceeded"

    def __init__(self, message: str, *, quota: str, limit: int, usage: int) -> None:
        super().__init__(message)
        self.extensions = {"quota": quota, "limit": limit, "usage": usage}


class TooManyOperations(StratusError):
    """The account already runs as many async operations as its quota allows: retry later."""

    status = 429
    slug = "concurrent-operations-quota-exceeded"
    title = "Too many async operations in flight"
    RETRY_AFTER_SECONDS = 5

    def __init__(self, message: str, *, quota: str, limit: int, usage: int) -> None:
        super().__init__(message)
        self.extensions = {"quota": quota, "limit": limit, "usage": usage}
        self.headers = {"Retry-After": str(self.RETRY_AFTER_SECONDS)}


class LastOwner(Conflict):
    slug = "last-owner"
    title = "The account needs an owner"


class ResourceVersionMismatch(Conflict):
    slug = "resource-version-mismatch"
    title = "The resource changed since it was read"


def check_resource_version(name: str, current: str, given: str | None) -> None:
    """Refuse (409 ``resource-version-mismatch``) a change sent with ``given``, a version other
    than the row's ``current`` one; None (none sent) checks nothing. ``name`` names the row in
    the refusal ("user 42")."""
    if given is not None and given != current:
        raise ResourceVersionMismatch(
            f"{name} is at resource_version {current}", field="resource_version"
        )


class StorageUnavailable(StratusError):
    """The database or disk cannot take the request now (full, locked, failing): retry later."""

    status = 503
    slug = "storage-unavailable"
    title = "Storage is temporarily unavailable"


class InternalError(StratusError):
    status = 500
    slug = "internal"
    title = "Internal error"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, what it wraps (SQLAlchemy's ``orig``) and its causes, each once."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        pending.extend(
            [
                orig if isinstance(orig, BaseException) else None,
                current.__cause__,
                current.__context__,
            ]
        )


# SQLSTATEs (PostgreSQL) of a server that cannot take the request now.
_UNAVAILABLE_SQLSTATES = {
    "53100": "the database disk is full",
    "53200": "the database is out of memory",
    "53300": "the database has too many connections",
    "55P03": "a database lock is held",
    "57P03": "the database is starting or stopping",
}


def storage_unavailable(exc: BaseException) -> StorageUnavailable | None:
    """The 503 an exception stands for when it says the storage cannot take requests now (a
    full disk, a locked or failing database); None for any other exception."""
    for cause in _causes(exc):
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return StorageUnavailable(f"the server's disk is full ({cause.strerror}); retry later")
        if isinstance(cause, sqlite3.OperationalError):
            message = str(cause).lower()
            if "database or disk is full" in message:
                return StorageUnavailable("the database's disk is full; retry later")
            if "locked" in message or "busy" in message:
                return StorageUnavailable("the database is busy; retry in a moment")
            if "disk i/o error" in message:
                return StorageUnavailable("the database cannot write to its disk; retry later")
        if getattr(cause, "connection_invalidated", False) is True:
            # SQLAlchemy's DBAPIError for a connection found dead (the server restarted):
            # the pool has dropped it and every connection opened before it.
            return StorageUnavailable("the connection to the database was lost; retry")
        sqlstate = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(sqlstate, str) and sqlstate in _UNAVAILABLE_SQLSTATES:
            return StorageUnavailable(_UNAVAILABLE_SQLSTATES[sqlstate] + "; retry later")
        if _connection_lost(cause, sqlstate):
            return StorageUnavailable("the database cannot be reached; retry later")
    return None


def _connection_lost(cause: BaseException, sqlstate: object) -> bool:
    """A PostgreSQL server that refused or dropped the connection: SQLSTATE class 08, a
    connection SQLAlchemy invalidated, or psycopg's connection failure (no SQLSTATE: the server
    never answered)."""
    if isinstance(sqlstate, str) and sqlstate.startswith("08"):
        return True
    if getattr(cause, "connection_invalidated", False) is True:
        return True
    kind = type(cause)
    return (
        kind.__module__.startswith("psycopg")
        and kind.__name__ == "OperationalError"
        and sqlstate is None
        and str(cause).startswith(("connection failed", "consuming input failed"))
    )


def unexpected_error_response(
    request: Request, exc: BaseException, request_id: str | None
) -> JSONResponse:
    """problem+json for an exception no handler knew: 503 when the storage cannot take the
    request now, else 500 carrying a correlation id that is logged with the traceback."""
    correlation = request_id or str(uuid.uuid4())
    unavailable = storage_unavailable(exc)
    if unavailable is not None:
        # str(exc) names the statement (its parameters are hidden by the engine): what the
        # operator needs to see which write met the full disk or the lock.
        logger.warning(
            "%s %s: %s (request id %s): %s",
            request.method,
            request.url.path,
            unavailable.message,
            correlation,
            exc,
        )
        response = problem_response(unavailable, request)
        response.headers["Retry-After"] = "5"
        return response
    logger.error(
        "unexpected error on %s %s (request id %s)",
        request.method,
        request.url.path,
        correlation,
        exc_info=exc,
    )
    error = InternalError(f"an unexpected error occurred; quote request id {correlation}")
    body = error.problem(instance=request.url.path) | {"request_id": correlation}
    return JSONResponse(
        body,
        status_code=500,
        media_type=PROBLEM_CONTENT_TYPE,
        headers={"X-Request-Id": correlation},
    )


def problem_response(error: StratusError, request: Request) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else {}
    headers.update(error.headers)
    return JSONResponse(
        error.problem(instance=request.url.path),
        status_code=error.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers or None,
    )


def install_error_handlers(app: FastAPI) -> None:
    async def on_stratus_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StratusError)
        return problem_response(exc, request)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        first = errors[0] if errors else {}
        location = [
            str(part)
            for part in first.get("loc", ())
            if part not in ("body", "query", "path", "header", "cookie")
        ]
        # A JSON syntax error's location is a character offset, not a field.
        field = None if first.get("type") == "json_invalid" else ".".join(location) or None
        detail = str(first.get("msg", "malformed request"))
        context = first.get("ctx") or {}
        if first.get("type") == "json_invalid" and context.get("error"):
            detail = f"the body is not valid JSON: {context['error']}"
        body = {
            "type": PROBLEM_BASE + "malformed-request",
            "title": "The request body is malformed",
            "status": 422,
            "detail": detail,
            "field": field,
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=422, media_type=PROBLEM_CONTENT_TYPE)

    async def on_http_exception(request: Request, exc: Exception) -> JSONResponse:
        # Routing's own answers (unknown path, wrong method) and Starlette's body limit.
        assert isinstance(exc, HTTPException)
        slug = _HTTP_SLUGS.get(exc.status_code, "http-error")
        body = {
            "type": PROBLEM_BASE + slug,
            "title": str(exc.detail),
            "status": exc.status_code,
            "detail": str(exc.detail),
            "instance": request.url.path,
        }
        return JSONResponse(
            body,
            status_code=exc.status_code,
            media_type=PROBLEM_CONTENT_TYPE,
            headers=dict(exc.headers or {}),
        )

    async def on_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Last resort, outside every middleware; the observability middleware answers first
        # for errors raised below it (with the request's id).
        return unexpected_error_response(request, exc, request.headers.get("x-request-id"))

    app.add_exception_handler(StratusError, on_stratus_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_exception)
    app.add_exception_handler(Exception, on_unexpected_error)


_HTTP_SLUGS = {
    400: "malformed-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
}
