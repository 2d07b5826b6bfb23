"""The OpenAPI document declares the problem+json answers every route can give."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from controlplane.kit.errors import PROBLEM_CONTENT_TYPE, Problem

_DESCRIPTIONS = {
    400: "A field is invalid (`invalid-field`), or the request could not be parsed",
    401: "Missing, unknown or revoked credentials (`unauthenticated`)",
    403: "The credential may not do this (`forbidden`, `csrf`)",
    404: "The resource does not exist or belongs to another account (`not-found`)",
    409: "The request conflicts with the resource's state (`conflict`, `already-exists`, ...)",
    413: "The request body is larger than the API accepts (`body-too-large`)",
    422: "The body is not JSON of the expected shape (`malformed-request`)",
    429: "Too many requests or a quota is reached",
    500: "An unexpected error; `request_id` is logged with its cause (`internal`)",
    503: "Storage cannot take the request now: disk full, database busy (`storage-unavailable`)",
}
_METHODS = ("get", "put", "post", "delete", "patch")


def _statuses(method: str, operation: dict[str, Any]) -> set[int]:
    """What any route may answer besides its own declarations: bad fields, credentials and
    tenancy on every route, conflicts on writes, 413 where a body is sent, 422 where anything
    is parsed, and the server's own 500/503."""
    statuses = {400, 401, 403, 404, 500, 503}
    if method != "get":
        statuses.add(409)
    if "requestBody" in operation:
        statuses.add(413)
    if "requestBody" in operation or operation.get("parameters"):
        statuses.add(422)
    declared = {int(code) for code in operation.get("responses", {}) if code.isdigit()}
    return statuses | {code for code in declared if code >= 400}


def document_problems(app: FastAPI) -> None:
    """Make ``app``'s OpenAPI declare a ``Problem`` schema and, on every operation, the
    problem+json answers it can give (routes may declare more, e.g. 429, with ``responses``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        problem = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path in schema.get("paths", {}).values():
            for method in _METHODS:
                operation = path.get(method)
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                for status in sorted(_statuses(method, operation)):
                    declared = responses.get(str(status), {})
                    responses[str(status)] = {
                        "description": _DESCRIPTIONS.get(
                            status, declared.get("description", "A problem")
                        ),
                        "content": problem,
                    }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
