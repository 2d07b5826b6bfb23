"""The route class of every API router: JSON bodies are read as I-JSON (RFC 7493).

A JSON string may spell a lone surrogate (``"\\ud800"``) or NUL (``"\\u0000"``); neither can be
stored (UTF-8 has no surrogates, PostgreSQL's text no NUL) nor shown safely, so a body carrying
one anywhere is malformed (422) before any route sees it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel


def _first_unstorable(value: Any) -> str | None:
    pending = [value]
    while pending:
        current = pending.pop()
        if isinstance(current, dict):
            pending.extend(current.keys())
            pending.extend(current.values())
        elif isinstance(current, list):
            pending.extend(current)
        elif isinstance(current, str):
            if "\x00" in current:
                return "a string contains NUL (\\u0000)"
            try:
                current.encode("utf-8")
            except UnicodeEncodeError:
                return "a string contains a lone surrogate (not I-JSON, RFC 7493)"
    return None


class _IJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = json.loads(body)
            unstorable = _first_unstorable(value)
            if unstorable is not None:
                # FastAPI answers a JSONDecodeError as the malformed body it is.
                raise json.JSONDecodeError(unstorable, body.decode("utf-8", "replace"), 0)
            self._json = value
        return self._json


class ApiRoute(APIRoute):
    """An :class:`APIRoute` whose JSON bodies must be I-JSON (no lone surrogates, no NUL)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            return await handler(_IJsonRequest(request.scope, request.receive))

        return handle


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """``model`` as the JSON body FastAPI would send for it as a route's ``response_model``
    (same serializer: pydantic's JSON mode), without FastAPI validating it a second time."""
    return Response(model.model_dump_json(), status_code, media_type="application/json")
