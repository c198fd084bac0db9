"""Cleanup runs when deletions fall due, so an idle stack creates no flow runs.

A refresh that queues a file for deletion asks for a run of the cleanup deployment at the
moment the file falls due, rounded up to a bucket so that the files of many refreshes share one
run. The bucket is the run's idempotency key: workers asking for the same moment get the same
run. The deployment's own schedule is only a slow safety net for anything missed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from prefect.states import Scheduled

from orchestration.deployments import CLEANUP
from runtime.container import ArmedCleanups, Runtime

BUCKET_SECONDS = 10
# A run due this close to now may already have read the deletion queue: do not count on it.
STARTING_SECONDS = 2

logger = get_logger("freshcache.scheduling")


def cleanup_bucket(due: datetime, now: datetime) -> datetime:
    """The bucket boundary at or after `due` (or after now, when `due` has passed)."""
    moment = max(due, now).timestamp()
    return datetime.fromtimestamp(math.ceil(moment / BUCKET_SECONDS) * BUCKET_SECONDS, UTC)


def buckets_to_arm(dues: Iterable[datetime], now: datetime, armed: set[datetime]) -> set[datetime]:
    """The buckets that deletions due at `dues` need, minus those an armed run already covers.

    A run armed for a bucket deletes everything due by then, so a deletion due before an armed
    bucket that has not started yet needs no run of its own.
    """
    upcoming = [b for b in armed if b >= now + timedelta(seconds=STARTING_SECONDS)]
    needed: set[datetime] = set()
    for due in dues:
        if any(b >= due for b in upcoming) or any(b >= due for b in needed):
            continue
        needed.add(cleanup_bucket(due, now))
    return needed


def arm_cleanup(armed: ArmedCleanups, dues: Iterable[datetime]) -> list[datetime]:
    """Schedule runs of the cleanup deployment for deletions due at `dues`, unless `armed` has
    them already; returns the new ones.

    Without the deployment (a refresh run outside `freshcache up` or a work pool) there is
    nothing to schedule: the deployment's schedule, or a manual cleanup, deletes the files. Its
    buckets count as armed all the same, so the refreshes after it do not ask again.
    """
    now = datetime.now(UTC)
    with armed.lock:
        armed.buckets.difference_update({b for b in armed.buckets if b < now})
        needed = buckets_to_arm(dues, now, armed.buckets)
    if not needed:
        return []
    created = _create_cleanup_runs(sorted(needed))
    with armed.lock:
        armed.buckets.update(needed)
    return created


def _create_cleanup_runs(buckets: list[datetime]) -> list[datetime]:
    """A scheduled run of the cleanup deployment at each of `buckets` (none without it)."""
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(CLEANUP.full)
        except ObjectNotFound:
            logger.debug("no %s deployment: deletions wait for a cleanup run", CLEANUP.full)
            return []
        for bucket in buckets:
            client.create_flow_run_from_deployment(
                deployment.id,
                state=Scheduled(scheduled_time=bucket),
                idempotency_key=f"cleanup-due-{bucket.isoformat()}",
            )
    return buckets


def arm_pending_cleanups(runtime: Runtime) -> None:
    """Arm cleanup runs for the catalog's queued deletions; a failure only delays deletions.

    Called wherever deletions are queued. When Prefect cannot take the run, the deployment's
    safety schedule deletes the files later: the refresh that queued them has succeeded.
    """
    try:
        arm_cleanup(runtime.armed_cleanups, runtime.catalog.untried_deletion_due_times())
    except Exception as exc:
        logger.warning("could not schedule a cleanup run (the safety schedule will): %s", exc)
