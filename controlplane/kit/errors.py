"""One error base class and its RFC 9457 problem+json rendering."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

PROBLEM_BASE = "https://stratus.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


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
        location = [str(part) for part in first.get("loc", ()) if part != "body"]
        body = {
            "type": PROBLEM_BASE + "malformed-request",
            "title": "The request body is malformed",
            "status": 422,
            "detail": str(first.get("msg", "malformed request")),
            "field": ".".join(location) or None,
            "instance": request.url.path,
        }
        return JSONResponse(body, status_code=422, media_type=PROBLEM_CONTENT_TYPE)

    app.add_exception_handler(StratusError, on_stratus_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
