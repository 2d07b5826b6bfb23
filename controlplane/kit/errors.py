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


class LimitExceeded(Conflict):
    slug = "limit-exceeded"
    title = "A limit would be exceeded"


class LastOwner(Conflict):
    slug = "last-owner"
    title = "The account needs an owner"


class ResourceVersionMismatch(Conflict):
    slug = "resource-version-mismatch"
    title = "The resource changed since it was read"


def problem_response(error: StratusError, request: Request) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse(
        error.problem(instance=request.url.path),
        status_code=error.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
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
