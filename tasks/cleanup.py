"""Deleting superseded cache files: due deletions, and the sweep of orphaned files."""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from prefect.logging import get_run_logger

from runtime.container import get_runtime
from tasks.results import CleanupResult, DeletionFailure


def delete_due_files() -> CleanupResult:
    """Delete every due file that no table references; count and keep the ones that fail."""
    catalog, storage = get_runtime().catalog, get_runtime().storage
    due = catalog.due_deletions()
    released = catalog.release_referenced_deletions([d.id for d in due])
    released_ids = {d.id for d in released}
    result = CleanupResult(released=[d.path for d in released])
    deleted_ids: list[int] = []
    errors: dict[int, str] = {}
    for deletion in due:
        if deletion.id in released_ids:
            continue
        try:
            storage.delete(deletion.path)
        except Exception as exc:
            errors[deletion.id] = f"{type(exc).__name__}: {exc}"
            result.failed.append(
                DeletionFailure(
                    path=deletion.path, attempts=deletion.attempts + 1, error=errors[deletion.id]
                )
            )
        else:
            deleted_ids.append(deletion.id)
            result.deleted.append(deletion.path)
    catalog.remove_deletions(deleted_ids)
    catalog.record_deletion_failures(errors)
    return result


def sweep_orphans(min_age_seconds: float | None = None) -> list[str]:
    """Queue cache files that nothing references or queues and that are older than a safety age."""
    runtime = get_runtime()
    age = runtime.settings.orphan_min_age_seconds if min_age_seconds is None else min_age_seconds
    now = runtime.catalog.clock()
    files = runtime.storage.list_files()
    known = runtime.catalog.known_paths()
    orphans = [
        f.path for f in files if f.path not in known and f.modified <= now - timedelta(seconds=age)
    ]
    runtime.catalog.schedule_deletions(orphans, now)
    return orphans


@task(name="delete-due-files", persist_result=False)
def delete_due_files_task() -> CleanupResult:
    result = delete_due_files()
    logger = get_run_logger()
    for failure in result.failed:
        logger.warning(
            "could not delete %s (attempt %d): %s", failure.path, failure.attempts, failure.error
        )
    return result


@task(name="sweep-orphans", persist_result=False)
def sweep_orphans_task(min_age_seconds: float | None = None) -> list[str]:
    return sweep_orphans(min_age_seconds)
