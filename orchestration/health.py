"""Is the Prefect API answering, and does its scheduler create the runs that schedules ask for?

A broken scheduler is silent: the API answers, the UI shows the schedules, and no run is ever
created (issue 11: Prefect 3.9.0 on SQLAlchemy 2.1). So beside the API's own health, every
active schedule older than the scheduler needs to act on it must have a scheduled run, and
no scheduled run may wait long past its start for a runner or worker to pick it up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from prefect.client.orchestration import PrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import DeploymentSchedule, StateType
from prefect.client.schemas.responses import DeploymentResponse
from prefect.server.schemas.schedules import SCHEDULE_TYPES
from prefect.settings import PREFECT_API_URL, get_current_settings
from pydantic import TypeAdapter

# A run still waiting this long after its expected start is not being picked up.
LATE_AFTER = timedelta(minutes=5)
_SERVER_SCHEDULE: TypeAdapter[SCHEDULE_TYPES] = TypeAdapter(SCHEDULE_TYPES)
OK = "ok"
UNKNOWN = "unknown"
# Of a status check's time, what the API's own /health may take; the schedules get the rest.
API_SHARE = 0.7


class PrefectUnavailableError(RuntimeError):
    """The Prefect API does not answer; the message says where and why (HTTP 503)."""


@dataclass(frozen=True)
class PrefectStatus:
    api: str
    scheduler: str

    @property
    def healthy(self) -> bool:
        return self.api == OK and (self.scheduler == OK or self.scheduler.startswith(UNKNOWN))


Starting = Callable[[], bool]


class PrefectApi:
    """The Prefect API as a long-running app uses it: its clients are kept for the app's life.

    A new client per request builds a TLS context (~30 ms of CPU), which every refresh paid
    before it started. `starting` tells whether a Prefect server this process started is still
    coming up. Use it as an async context manager, inside the event loop that calls it.
    """

    def __init__(self, starting: Starting | None = None) -> None:
        self._starting = starting
        self._http = httpx.AsyncClient()
        self._client: PrefectClient | None = None
        self._opening = asyncio.Lock()

    async def __aenter__(self) -> PrefectApi:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._client is not None:
            await self._client.__aexit__(None, None, None)
        await self._http.aclose()

    async def client(self) -> PrefectClient:
        """Prefect's client, opened on first use (the API may not be configured before)."""
        async with self._opening:
            if self._client is None:
                self._client = await get_client().__aenter__()
        return self._client

    async def status(self, timeout: float) -> PrefectStatus:
        """The API's and the scheduler's status, within `timeout` seconds whatever the server
        does."""
        deadline = time.monotonic() + timeout
        problem = await self.problem(timeout * API_SHARE)
        if problem is not None:
            return PrefectStatus(
                api=problem, scheduler=f"{UNKNOWN}: the Prefect API does not answer"
            )
        try:
            left = max(deadline - time.monotonic(), 0.05)
            scheduler = await asyncio.wait_for(scheduler_problem(await self.client()), left)
        except (TimeoutError, httpx.HTTPError) as exc:
            # Not evidence of a broken scheduler: reported, without failing the check.
            return PrefectStatus(
                api=OK, scheduler=f"{UNKNOWN}: could not read schedules ({_reason(exc)})"
            )
        return PrefectStatus(api=OK, scheduler=scheduler or OK)

    async def require(self, timeout: float) -> None:
        """Raise PrefectUnavailableError unless the API answers within `timeout` seconds."""
        problem = await self.problem(timeout)
        if problem is not None:
            raise PrefectUnavailableError(f"the Prefect API is not available: {problem}")

    async def problem(self, timeout: float) -> str | None:
        """None when GET {api}/health answers 200 within `timeout`, else what went wrong."""
        url = api_url()
        if not url:
            return "PREFECT_API_URL is not set"
        if self._starting is not None and self._starting():
            return f"starting: the Prefect server at {url} is not answering yet"
        try:
            try:
                response = await self._http.get(f"{url}/health", timeout=timeout)
            except httpx.RemoteProtocolError:
                # A kept-alive connection that the server closed as the request went out (its
                # keep-alive timeout ran out just then, a race under load): ask once more, on a
                # new connection, rather than answer a refresh 503.
                response = await self._http.get(f"{url}/health", timeout=timeout)
        except (httpx.HTTPError, OSError) as exc:
            return f"unreachable at {url}: {_reason(exc)}"
        if response.status_code != 200:
            return f"unhealthy at {url}: /health answered {response.status_code}"
        return None


def api_url() -> str:
    return str(PREFECT_API_URL.value() or "").rstrip("/")


async def scheduler_problem(client: PrefectClient, now: datetime | None = None) -> str | None:
    """None when every due schedule has runs that get picked up, else what is wrong."""
    now = now or datetime.now(UTC)
    deployments = [
        d
        for d in await client.read_deployments(limit=200)
        if not d.paused and any(s.active for s in d.schedules)
    ]
    checks = await asyncio.gather(*(_deployment_problem(client, d, now) for d in deployments))
    problems = [p for p in checks if p is not None]
    return "; ".join(problems) if problems else None


async def _deployment_problem(
    client: PrefectClient, deployment: DeploymentResponse, now: datetime
) -> str | None:
    settings = get_current_settings().server.services.scheduler
    active = [s for s in deployment.schedules if s.active]
    # An update deletes the deployment's future runs; the scheduler recreates them on its
    # next pass (the recent-deployments loop, else the main loop).
    changed = max([deployment.updated or now, *(s.updated or now for s in active)])
    allowance = timedelta(
        seconds=2 * settings.loop_seconds + settings.recent_deployments_loop_seconds
    )
    if now - changed < allowance or not await _fires_soon(active, now, settings.max_scheduled_time):
        return None
    name = deployment.name
    waiting = await _count_waiting(client, deployment, before=None)
    if waiting == 0:
        return (
            f"broken: deployment {name!r} has an active schedule but no scheduled run "
            f"{int((now - changed).total_seconds())} s after it was set "
            "(see the Prefect server's log)"
        )
    late = await _count_waiting(client, deployment, before=now - LATE_AFTER)
    if late:
        return (
            f"late: {late} scheduled runs of {name!r} waited over "
            f"{int(LATE_AFTER.total_seconds() // 60)} min: no runner or worker picks them up"
        )
    return None


async def _fires_soon(
    schedules: list[DeploymentSchedule], now: datetime, horizon: timedelta
) -> bool:
    """Whether a schedule has a date within the horizon the scheduler fills with runs."""
    for deployment_schedule in schedules:
        try:
            schedule = _SERVER_SCHEDULE.validate_python(deployment_schedule.schedule.model_dump())
        except ValueError:
            continue
        if await schedule.get_dates(n=1, start=now, end=now + horizon):
            return True
    return False


async def _count_waiting(
    client: PrefectClient, deployment: DeploymentResponse, before: datetime | None
) -> int:
    return await client.count_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
            expected_start_time=FlowRunFilterExpectedStartTime(before_=before) if before else None,
        ),
    )


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
