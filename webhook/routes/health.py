"""GET /health: the catalog, the Prefect API and its scheduler, answered within 2 s."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from catalog import Catalog
from webhook.errors import message_for
from webhook.models import Health
from webhook.state import AppRuntime

# Each part is bounded and they run at once: /health answers within 2 s whatever hangs.
CATALOG_SECONDS = 1.5
PREFECT_SECONDS = 1.7

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses={503: {"model": Health}})
async def health(request: Request, runtime: AppRuntime) -> JSONResponse:
    """200 when everything answers and scheduled runs happen; 503 naming what does not."""
    catalog, prefect = await asyncio.gather(
        _catalog_status(runtime.catalog),
        request.app.state.prefect.status(PREFECT_SECONDS),
    )
    healthy = catalog == "ok" and prefect.healthy
    body = Health(
        status="ok" if healthy else "degraded",
        catalog=catalog,
        prefect=prefect.api,
        scheduler=prefect.scheduler,
    )
    return JSONResponse(body.model_dump(), status_code=200 if healthy else 503)


async def _catalog_status(catalog: Catalog) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(catalog.counts), CATALOG_SECONDS)
    except TimeoutError:
        return f"not answering within {CATALOG_SECONDS} s"
    except Exception as exc:
        return f"unreachable: {message_for(exc)}"
    return "ok"
