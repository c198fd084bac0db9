"""The FastAPI app: POST /refresh, connections, POST /query and GET /health."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestration.health import PrefectApi, Starting
from query import QueryEngine
from runtime.container import Runtime
from webhook.auth import require_token
from webhook.errors import validation_message, validation_status
from webhook.failures import ErrorResponses
from webhook.limits import BodySizeLimit
from webhook.models import ErrorResponse
from webhook.querying import QueryService
from webhook.routes import connections, health, policies, query, refresh
from webhook.runners import FlowRunnerFactory, lazy_fetch, threads_here

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 409, 413, 415, 422, 500, 503)
}


def create_app(
    runtime: Runtime,
    *,
    on_startup: Callable[[Runtime], Awaitable[None]] | None = None,
    prefect_starting: Starting | None = None,
    flow_runner: FlowRunnerFactory = threads_here,
) -> FastAPI:
    """The webhook app over `runtime` (its routes take it from `app.state.runtime`);
    `on_startup` runs once when it starts serving (e.g. due deletions), `prefect_starting`
    tells whether a Prefect server started with it is still coming up, `flow_runner` makes
    what runs its inline flow runs (webhook/runners.py)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = runtime.settings
        inline_runner = app.state.inline_runner = flow_runner(runtime)
        try:
            async with PrefectApi(prefect_starting) as prefect:
                app.state.prefect = prefect
                with QueryEngine(runtime, lazy_fetch(inline_runner)) as engine:
                    queries = app.state.queries = QueryService(
                        engine, settings.query_concurrency, settings.query_queue_seconds
                    )
                    try:
                        if on_startup is not None:
                            await on_startup(runtime)
                        yield
                    finally:
                        queries.close()
        finally:
            inline_runner.close()

    # /docs and /redoc serve Swagger UI and ReDoc from the installed package, not a CDN: they
    # work on a machine without internet access.
    app = FastAPIOffline(
        title="freshcache",
        description="Refresh and query a Parquet cache of remote database tables.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.state.runtime = runtime
    app.add_middleware(ErrorResponses)
    app.add_middleware(BodySizeLimit)
    protected = [Depends(require_token)]
    app.include_router(refresh.router, dependencies=protected)
    app.include_router(connections.router, dependencies=protected)
    app.include_router(policies.router, dependencies=protected)
    app.include_router(query.router, dependencies=protected)
    app.include_router(health.router)
    _install_error_handlers(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        return JSONResponse(
            {"error": validation_message(errors, exc.body)}, status_code=validation_status(errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)
