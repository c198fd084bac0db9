"""POST /refresh and GET /refresh/runs/{id}."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from catalog import Catalog
from core.results import ConnectionRefreshResult, SchemaRefreshResult, TableRefreshResult
from flows.request import RefreshKind, RefreshRequest
from webhook.body import require_json_body
from webhook.execution import execute_refresh, refresh_run_status
from webhook.models import RefreshAccepted, RefreshRunStatus
from webhook.state import AppRuntime

router = APIRouter(tags=["refresh"])


def check_targets_exist(catalog: Catalog, request: RefreshRequest) -> None:
    """404 before anything runs: the connection, and the table of a table refresh."""
    if request.connection_id is None:
        return
    catalog.get_connection(request.connection_id)
    if request.kind() is RefreshKind.DATA_TABLE:
        assert request.schema_name is not None and request.table_name is not None
        catalog.get_table(request.connection_id, request.schema_name, request.table_name)


@router.post(
    "/refresh",
    response_model=SchemaRefreshResult | TableRefreshResult | ConnectionRefreshResult,
    responses={202: {"model": RefreshAccepted}},
    dependencies=[Depends(require_json_body)],
)
async def post_refresh(
    request: Request,
    runtime: AppRuntime,
    body: RefreshRequest,
    wait: float = Query(30, ge=0, le=3600, description="Seconds to wait in deployment mode"),
) -> Any:
    """Refresh schemas (all or one connection) or data (one table or a whole connection)."""
    await run_in_threadpool(check_targets_exist, runtime.catalog, body)
    state = request.app.state
    outcome = await execute_refresh(runtime, body, wait, state.inline_runner, state.prefect)
    if isinstance(outcome, RefreshAccepted):
        return JSONResponse(outcome.model_dump(), status_code=202)
    return JSONResponse(outcome)


@router.get("/refresh/runs/{flow_run_id}", response_model=RefreshRunStatus)
async def get_refresh_run(request: Request, flow_run_id: UUID) -> RefreshRunStatus:
    """The state of a refresh started in deployment mode, with its result once finished."""
    return await refresh_run_status(request.app.state.prefect, flow_run_id)
