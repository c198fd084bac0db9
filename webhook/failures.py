"""Any exception a route raises becomes {"error": message} with its status (webhook/errors.py)."""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webhook.errors import headers_for, message_for, status_for

logger = logging.getLogger("freshcache.webhook")


class ErrorResponses:
    """Pure ASGI, so it costs nothing on the happy path (BaseHTTPMiddleware copies every call).

    It replaces Starlette's Exception handlers, which re-raise after answering and so drop the
    connection under uvicorn.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            status = status_for(exc)
            if status == 500:
                logger.exception("request failed: %s %s", scope["method"], scope["path"])
            body = json.dumps({"error": message_for(exc)}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        *headers_for(exc),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
