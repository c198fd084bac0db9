"""The FastAPI app: POST /refresh, connections, POST /query and GET /health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from webhook.auth import require_token
from webhook.errors import validation_message, validation_status
from webhook.failures import ErrorResponses
from webhook.limits import BodySizeLimit
from webhook.models import ErrorResponse
from webhook.routes import connections, health, query, refresh

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 422, 500)
}


def create_app(*, on_startup: Any = None) -> FastAPI:
    """The webhook app; `on_startup` runs once when it starts serving (e.g. due deletions)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if on_startup is not None:
            await on_startup()
        yield

    app = FastAPI(
        title="freshcache",
        description="Refresh and query a Parquet cache of remote database tables.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.add_middleware(ErrorResponses)
    app.add_middleware(BodySizeLimit)
    protected = [Depends(require_token)]
    app.include_router(refresh.router, dependencies=protected)
    app.include_router(connections.router, dependencies=protected)
    app.include_router(query.router, dependencies=protected)
    app.include_router(health.router)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return JSONResponse(
            {"error": validation_message(errors)}, status_code=validation_status(errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
