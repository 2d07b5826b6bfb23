"""Request bodies over the configured limit are refused with 413 before they are read.

A declared ``Content-Length`` over the limit is answered at once, without reading a byte of
the body (and before authentication: an unauthenticated client cannot make the API buffer
hundreds of megabytes). A chunked body is counted as it streams and refused as soon as it
crosses the limit; the application then sees the client as gone.
"""

from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.kit.errors import PROBLEM_CONTENT_TYPE, BodyTooLarge


class BodyLimitMiddleware:
    """Pure ASGI middleware enforcing ``max_bytes`` on every HTTP request body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: bytes | None = None
        streamed = False
        for name, value in scope["headers"]:  # ASGI servers give header names in lower case
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                streamed = True
        if not streamed:
            # The server reads no more of a body than its declared length (none without one,
            # a GET's): only a declared length over the limit is refused, nothing is counted.
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return

        received = 0
        refused = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not response_started:
                        await self._refuse(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                return  # the 413 went out instead of whatever the application answers
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = BodyTooLarge(
            f"the request body is larger than {self.max_bytes} bytes, "
            "the most this API accepts (STRATUS_API_MAX_BODY_BYTES)"
        )
        response = JSONResponse(
            error.problem(instance=scope.get("path")),
            status_code=error.status,
            media_type=PROBLEM_CONTENT_TYPE,
            # The unread body is left on the connection: it cannot carry another request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
