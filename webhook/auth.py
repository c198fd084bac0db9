"""Bearer-token authentication, enabled when FRESHCACHE_API_TOKEN is set."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request

from webhook.state import AppRuntime


async def require_token(request: Request, runtime: AppRuntime) -> None:
    """Async, so FastAPI checks it on the event loop instead of a thread-pool hop."""
    token = runtime.settings.api_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise HTTPException(status_code=401, detail="missing or wrong bearer token")
