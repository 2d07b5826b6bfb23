"""SCIM errors (RFC 7644 §3.12): every refusal under ``/scim/`` answers a SCIM error body,
``application/scim+json``, not problem+json: SCIM clients (Okta, Entra ID) read ``status``,
``scimType`` and ``detail``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from controlplane.kit.errors import (
    AlreadyExists,
    InvalidField,
    QuotaExceeded,
    StratusError,
    storage_unavailable,
)

SCIM_PREFIX = "/scim/"
SCIM_CONTENT_TYPE = "application/scim+json"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


class ScimError(StratusError):
    """A refusal with a SCIM ``scimType`` (RFC 7644 table 9)."""

    status = 400
    slug = "scim-invalid-value"
    title = "Invalid SCIM request"
    scim_type: str | None = "invalidValue"


class InvalidFilter(ScimError):
    slug = "scim-invalid-filter"
    scim_type = "invalidFilter"


class InvalidPath(ScimError):
    slug = "scim-invalid-path"
    scim_type = "invalidPath"


class NoTarget(ScimError):
    slug = "scim-no-target"
    scim_type = "noTarget"


class InvalidSyntax(ScimError):
    slug = "scim-invalid-syntax"
    scim_type = "invalidSyntax"


class Mutability(ScimError):
    slug = "scim-mutability"
    scim_type = "mutability"


def _scim_type(error: StratusError) -> str | None:
    if isinstance(error, ScimError):
        return error.scim_type
    if isinstance(error, AlreadyExists):
        return "uniqueness"
    if isinstance(error, QuotaExceeded):
        return None
    if isinstance(error, InvalidField):
        return "invalidValue"
    return None


def scim_error_response(
    status: int, detail: str, scim_type: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(status), "detail": detail}
    if scim_type is not None:
        body["scimType"] = scim_type
    return JSONResponse(body, status_code=status, media_type=SCIM_CONTENT_TYPE, headers=headers)


def _is_scim(request: Request) -> bool:
    return request.url.path.startswith(SCIM_PREFIX)


def install_scim_error_handlers(app: FastAPI) -> None:
    """Answer SCIM errors under ``/scim/``, and leave every other path to the handlers already
    installed (problem+json)."""
    originals = dict(app.exception_handlers)

    def wrap(kind: type[Exception]) -> None:
        original = originals[kind]

        async def handler(request: Request, exc: Exception) -> Any:
            response = _scim_response(exc) if _is_scim(request) else None
            if response is None:
                # Not SCIM, or an unexpected error: logged with a correlation id as elsewhere.
                return await original(request, exc)
            return response

        app.add_exception_handler(kind, handler)

    for kind in (StratusError, RequestValidationError, HTTPException, Exception):
        wrap(kind)


def _scim_response(exc: Exception) -> JSONResponse | None:
    if isinstance(exc, StratusError):
        headers = dict(exc.headers)
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="scim"'
        return scim_error_response(exc.status, exc.message, _scim_type(exc), headers or None)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        detail = str(first.get("msg", "malformed request"))
        return scim_error_response(400, f"{where}: {detail}" if where else detail, "invalidSyntax")
    if isinstance(exc, HTTPException):
        return scim_error_response(
            exc.status_code, str(exc.detail), headers=dict(exc.headers or {})
        )
    unavailable = storage_unavailable(exc)
    if unavailable is not None:
        return scim_error_response(503, unavailable.message, headers={"Retry-After": "5"})
    return None
