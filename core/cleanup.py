"""Deleting superseded cache files: due deletions, and the sweep of orphaned files."""

from __future__ import annotations

from datetime import timedelta

from core.results import CleanupResult, DeletionFailure, OrphanSweep
from runtime.container import Runtime


def delete_due_files(runtime: Runtime) -> CleanupResult:
    """Delete every due file that no table references; count and keep the ones that fail."""
    catalog, storage = runtime.catalog, runtime.storage
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


def sweep_orphans(runtime: Runtime, min_age_seconds: float | None = None) -> OrphanSweep:
    """Queue cache files that nothing references or queues and that are older than a safety age;
    remove temporaries as old whose writer is gone (a running writer's are never touched)."""
    age = runtime.settings.orphan_min_age_seconds if min_age_seconds is None else min_age_seconds
    now = runtime.catalog.clock()
    cutoff = now - timedelta(seconds=age)
    temporaries = runtime.storage.remove_abandoned_temporaries(cutoff)
    files = runtime.storage.list_files()
    known = runtime.catalog.known_paths()
    orphans = [f.path for f in files if f.path not in known and f.modified <= cutoff]
    runtime.catalog.schedule_deletions(orphans, now)
    return OrphanSweep(scheduled=orphans, temporaries_removed=temporaries)
