"""Running a refresh: in this process (inline) or through the `freshcache-refresh` deployment."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID

from fastapi import HTTPException
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound

from flows.inline import FlowRunner
from flows.refresh import refresh_inline
from flows.request import RefreshRequest
from orchestration.deployments import REFRESH
from orchestration.health import PrefectApi
from runtime.container import Runtime
from webhook.models import RefreshAccepted, RefreshRunStatus

# A run's state is read again after 50 ms, then each wait 1.5x longer, up to 1 s: a short run
# is answered within ~1/3 of its time, a long one costs a read a second.
FIRST_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 1.0
PREFECT_CHECK_SECONDS = 2.0


class RefreshRunFailed(RuntimeError):
    """A deployment run ended without a result; the message is its state message."""


async def execute_refresh(
    runtime: Runtime,
    request: RefreshRequest,
    wait: float,
    inline: FlowRunner,
    prefect: PrefectApi,
) -> dict[str, Any] | RefreshAccepted:
    """The refresh's result, or a RefreshAccepted when it outlasts `wait` (deployment mode).

    Without a Prefect API no flow can run: that is a 503 naming the API, at once.
    """
    await prefect.require(PREFECT_CHECK_SECONDS)
    if runtime.settings.execution == "inline":
        # In a worker thread, so the event loop keeps serving /health during a long refresh.
        return await inline.run(refresh_inline, request)
    return await _run_deployment(await prefect.client(), request, wait)


async def _run_deployment(
    client: PrefectClient, request: RefreshRequest, wait: float
) -> dict[str, Any] | RefreshAccepted:
    deployment = await client.read_deployment_by_name(REFRESH.full)
    run = await client.create_flow_run_from_deployment(
        deployment.id, parameters=request.model_dump(exclude_defaults=True)
    )
    deadline, pause = time.monotonic() + wait, FIRST_POLL_SECONDS
    while not _finished(run):
        if time.monotonic() >= deadline:
            return _accepted(run)
        await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 1.5, MAX_POLL_SECONDS)
        run = await client.read_flow_run(run.id)
    return await _result(run)


async def refresh_run_status(prefect: PrefectApi, flow_run_id: UUID) -> RefreshRunStatus:
    client = await prefect.client()
    try:
        run = await client.read_flow_run(flow_run_id)
    except ObjectNotFound:
        raise HTTPException(404, f"no refresh run {flow_run_id}") from None
    status = RefreshRunStatus(
        flow_run_id=str(run.id), state=_state_name(run), finished=_finished(run)
    )
    if status.finished:
        try:
            status.result = await _result(run)
        except RefreshRunFailed as exc:
            status.error = str(exc)
    return status


def _finished(run: FlowRun) -> bool:
    return run.state is not None and run.state.is_final()


def _state_name(run: FlowRun) -> str:
    return (run.state.name if run.state is not None else None) or "UNKNOWN"


def _accepted(run: FlowRun) -> RefreshAccepted:
    return RefreshAccepted(
        flow_run_id=str(run.id), state=_state_name(run), status_url=f"/refresh/runs/{run.id}"
    )


async def _result(run: FlowRun) -> dict[str, Any]:
    assert run.state is not None
    if not run.state.is_completed():
        raise RefreshRunFailed(run.state.message or f"refresh run ended {_state_name(run)}")
    return await run.state.aresult()
