"""GET /health: is the catalog reachable, is the Prefect API reachable."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from prefect.client.orchestration import get_client
from starlette.concurrency import run_in_threadpool

from runtime.container import get_runtime
from webhook.errors import message_for
from webhook.models import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health() -> JSONResponse:
    try:
        await run_in_threadpool(lambda: get_runtime().catalog.counts())
        catalog = "ok"
    except Exception as exc:
        catalog = f"unreachable: {message_for(exc)}"
    async with get_client() as client:
        failure = await client.api_healthcheck()
    prefect = "ok" if failure is None else f"unreachable: {message_for(failure)}"
    healthy = catalog == prefect == "ok"
    body = Health(status="ok" if healthy else "degraded", catalog=catalog, prefect=prefect)
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)
