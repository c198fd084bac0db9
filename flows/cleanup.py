"""Cleanup: queue orphaned files, then delete every due file nothing references."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.artifacts import publish_cleanup
from tasks.cleanup import delete_due_files_task, sweep_orphans_task


@flow(name="cleanup", flow_run_name="cleanup")
def cleanup(orphan_min_age_seconds: float | None = None) -> dict[str, Any]:
    orphans = sweep_orphans_task(orphan_min_age_seconds)
    result = delete_due_files_task()
    result.orphans_scheduled = orphans
    publish_cleanup(result)
    return result.model_dump()
