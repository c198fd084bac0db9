"""Cleanup: queue orphaned files, then delete every due file nothing references."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.artifacts import publish_cleanup
from flows.failures import failing_with_the_cause
from flows.parameters import OptionalFloat
from orchestration.scheduling import arm_pending_cleanups
from runtime.container import entry_runtime
from tasks.cleanup import delete_due_files_task, sweep_orphans_task


@flow(name="cleanup", flow_run_name="cleanup")
@failing_with_the_cause
def cleanup(orphan_min_age_seconds: OptionalFloat = None) -> dict[str, Any]:
    """Queue orphaned cache files, then delete every due file that no table references.

    Args:
        orphan_min_age_seconds: Minimum age of an orphan; empty: FRESHCACHE_ORPHAN_MIN_AGE_SECONDS.
    """
    runtime = entry_runtime()
    sweep = sweep_orphans_task(orphan_min_age_seconds)
    result = delete_due_files_task()
    result.orphans_scheduled = sweep.scheduled
    result.temporaries_removed = sweep.temporaries_removed
    publish_cleanup(result)
    # Deletions queued meanwhile, or due later than this run, get a run of their own.
    arm_pending_cleanups(runtime)
    return result.model_dump()
