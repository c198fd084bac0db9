"""Every request body is a JSON object: a clear 4xx for another content type or no body."""

from __future__ import annotations

import email.message

from fastapi import HTTPException, Request


async def require_json_body(request: Request) -> None:
    """415 unless the Content-Type is JSON, 400 for an empty body (checked before the fields)."""
    content_type = request.headers.get("content-type")
    if not _is_json(content_type):
        got = f"got {content_type}" if content_type else "none was given"
        raise HTTPException(
            status_code=415,
            detail=f"request body must be JSON: send Content-Type: application/json ({got})",
        )
    if not await request.body():
        raise HTTPException(status_code=400, detail="request body is empty: send a JSON object")


def _is_json(content_type: str | None) -> bool:
    """application/json or application/<anything>+json, as FastAPI decides whether to parse."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
