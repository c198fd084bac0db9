"""The cleanup's tasks: the sweep of orphaned files and the deletion of due files
(core/cleanup.py), each a task run of the `cleanup` flow."""

from __future__ import annotations

from prefect import task
from prefect.logging import get_run_logger

from core.cleanup import delete_due_files, sweep_orphans
from core.results import CleanupResult, OrphanSweep
from runtime.container import entry_runtime


@task(name="delete-due-files", persist_result=False)
def delete_due_files_task() -> CleanupResult:
    result = delete_due_files(entry_runtime())
    logger = get_run_logger()
    for failure in result.failed:
        logger.warning(
            "could not delete %s (attempt %d): %s", failure.path, failure.attempts, failure.error
        )
    return result


@task(name="sweep-orphans", persist_result=False)
def sweep_orphans_task(min_age_seconds: float | None = None) -> OrphanSweep:
    return sweep_orphans(entry_runtime(), min_age_seconds)
