"""The console sub-application, mounted at ``/`` after every API route."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, RedirectResponse
from starlette.datastructures import State
from starlette.exceptions import HTTPException

from controlplane.console._audit import router as audit_router
from controlplane.console._billing import router as billing_router
from controlplane.console._csp import CONTENT_SECURITY_POLICY
from controlplane.console._groups import router as groups_router
from controlplane.console._insights import router as insights_router
from controlplane.console._namespaces import router as namespaces_router
from controlplane.console._operator import router as operator_router
from controlplane.console._people import router as people_router
from controlplane.console._provisioning import router as provisioning_router
from controlplane.console._session import CurrentViewer, SignInRequired
from controlplane.console._settings import router as settings_router
from controlplane.console._sign_in import router as sign_in_router
from controlplane.console._sign_in import sign_in_redirect
from controlplane.console._templates import render
from controlplane.console._workflows import router as workflows_router
from controlplane.kit.errors import NotFound, StratusError, problem_response

STATIC_DIR = Path(__file__).resolve().parent / "static"
# What /console/static/ serves: the console's own files and the pinned htmx from npm.
STATIC_FILES = {
    "console.css": (STATIC_DIR / "console.css", "text/css"),
    "console.js": (STATIC_DIR / "console.js", "text/javascript"),
    "htmx.min.js": (
        STATIC_DIR / "node_modules" / "htmx.org" / "dist" / "htmx.min.js",
        "text/javascript",
    ),
}
_NOT_FOUND = "This page does not exist, or you do not have access to it."


def _error_page(request: Request, error: StratusError) -> Response:
    if isinstance(error, SignInRequired):
        return sign_in_redirect(request)
    if request.url.path.startswith("/api/"):
        return problem_response(error, request)
    # One page for every "not found": another account's ids look exactly like unknown ones.
    message = _NOT_FOUND if isinstance(error, NotFound) else error.message
    return render(
        request, "error.html", status_code=error.status, title=error.title, message=message
    )


def create_console(state: State) -> FastAPI:
    """The console, sharing the API's ``state`` (database, settings, operation starter)."""
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state = state

    @console.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        # A page may widen it (the workflow page lets the browser reach the codec server).
        if "Content-Security-Policy" not in response.headers:
            response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Cache-Control"] = "no-store"
        return response

    async def on_stratus_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StratusError)
        return _error_page(request, exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error_page(request, NotFound("not found"))
        error = StratusError(str(exc.detail))
        error.status, error.title = exc.status_code, str(exc.detail)
        return _error_page(request, error)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        error = StratusError("the form is incomplete; go back and fill in every field")
        error.status, error.title = 400, "Incomplete form"
        return _error_page(request, error)

    console.add_exception_handler(StratusError, on_stratus_error)
    console.add_exception_handler(HTTPException, on_http_error)
    console.add_exception_handler(RequestValidationError, on_validation_error)

    @console.get("/console/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        found = STATIC_FILES.get(name)
        if found is None or not found[0].is_file():
            raise NotFound(f"no static file {name}")
        return FileResponse(
            found[0], media_type=found[1], headers={"Cache-Control": "public, max-age=300"}
        )

    @console.get("/", include_in_schema=False)
    async def home(viewer: CurrentViewer) -> Response:
        return RedirectResponse(
            "/operator/accounts" if viewer.is_operator else "/namespaces", status_code=303
        )

    console.include_router(sign_in_router)
    console.include_router(namespaces_router)
    console.include_router(billing_router)
    console.include_router(audit_router)
    console.include_router(workflows_router)
    console.include_router(insights_router)
    console.include_router(people_router)
    console.include_router(groups_router)
    console.include_router(settings_router)
    console.include_router(provisioning_router)
    console.include_router(operator_router)
    return console
