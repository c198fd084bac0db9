"""Freshness runs when a table's target falls due, and none while no table has a target.

Each freshness run, and each policy change, asks for the next run of the freshness deployment
at the moment the soonest target falls due. A run already scheduled at or before that moment
covers it; our own later runs are then redundant and deleted (the run at that moment schedules
its own successor). The deployment's slow safety schedule is active exactly while some table
has a target: a stack with no targets creates no freshness runs at all.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from prefect.states import Scheduled

from catalog import Catalog
from core.freshness import next_run_at, table_statuses
from orchestration.deployments import FRESHNESS

BUCKET_SECONDS = 5
# Marks the runs asked for here, as opposed to the safety schedule's.
DUE_TAG = "freshcache-due"

logger = get_logger("freshcache.freshness")


def freshness_bucket(at: datetime) -> datetime:
    """The bucket boundary at or after `at`: callers asking for nearly the same moment share."""
    return datetime.fromtimestamp(math.ceil(at.timestamp() / BUCKET_SECONDS) * BUCKET_SECONDS, UTC)


def schedule_freshness(at: datetime | None) -> datetime | None:
    """Have a freshness run start by `at` (None: no table has a target, so no run at all).

    Returns the moment of the run created, or None when none was needed or there is no
    freshness deployment (outside `freshcache up` or a work pool: nothing runs it anyway).
    """
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(FRESHNESS.full)
        except ObjectNotFound:
            logger.debug("no %s deployment: no freshness run to schedule", FRESHNESS.full)
            return None
        _activate_safety_schedule(client, deployment.id, active=at is not None)
        scheduled = _scheduled_runs(client, deployment.id)
        moment = None if at is None else freshness_bucket(at)
        for run in scheduled:
            if DUE_TAG in run.tags and (moment is None or _start(run) > moment):
                client.delete_flow_run(run.id)
        if moment is None or any(_start(run) <= moment for run in scheduled):
            return None
        client.create_flow_run_from_deployment(
            deployment.id,
            state=Scheduled(scheduled_time=moment),
            tags=[DUE_TAG],
            idempotency_key=f"freshness-due-{moment.isoformat()}",
        )
        return moment


def schedule_freshness_quietly(at: datetime | None) -> None:
    """schedule_freshness, where a failure must not fail the caller (the safety schedule, or
    the next policy change, schedules the run instead)."""
    try:
        schedule_freshness(at)
    except Exception as exc:
        logger.warning("could not schedule a freshness run: %s", exc)


def _activate_safety_schedule(
    client: SyncPrefectClient, deployment_id: UUID, *, active: bool
) -> None:
    for schedule in client.read_deployment_schedules(deployment_id):
        if schedule.active != active:
            client.update_deployment_schedule(deployment_id, schedule.id, active=active)


def _scheduled_runs(client: SyncPrefectClient, deployment_id: UUID) -> list[FlowRun]:
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
        ),
        sort=FlowRunSort.EXPECTED_START_TIME_ASC,
    )


def _start(run: FlowRun) -> datetime:
    return (
        run.expected_start_time or run.next_scheduled_start_time or datetime.max.replace(tzinfo=UTC)
    )


def arm_freshness(catalog: Catalog, lead_seconds: float) -> None:
    """Schedule the freshness run the catalog's targets need now (after a policy change)."""
    now = catalog.clock()
    schedule_freshness_quietly(next_run_at(table_statuses(catalog, now), now, lead_seconds))
