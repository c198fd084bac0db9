"""What a route takes from its app: the Runtime the app was created with (`app.state.runtime`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from runtime.container import Runtime


async def app_runtime(request: Request) -> Runtime:
    """Async, so FastAPI resolves it on the event loop instead of a thread-pool hop."""
    runtime: Runtime = request.app.state.runtime
    return runtime


AppRuntime = Annotated[Runtime, Depends(app_runtime)]
