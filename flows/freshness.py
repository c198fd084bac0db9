"""The `freshness` flow: keeps every table with a target within it (core/freshness.py)."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from core.freshness import Decision, next_run_at, plan_freshness, table_statuses
from core.results import FreshnessOutcome, FreshnessResult, TableRefreshResult
from flows.artifacts import publish_freshness
from flows.outcomes import describe, outcome
from orchestration.freshness_runs import BUCKET_SECONDS, schedule_freshness_quietly
from orchestration.scheduling import arm_pending_cleanups
from runtime.container import entry_runtime
from runtime.settings import Settings
from tasks.concurrency import slots_kept_by_run
from tasks.refresh_table import configured_refresh_table

# Fetch threads of one run at most; each fetch also holds a slot of its connection's limit.
MAX_THREADS = 16


@flow(name="freshness", flow_run_name="freshness")
def freshness() -> dict[str, Any]:
    """Refresh the tables whose target falls due before the next run, most overdue first.

    Every table with a `max_staleness_seconds` is listed in the run's artifact with its age and
    why it was refreshed or not. The run then schedules the next one for when the soonest
    target falls due (none when no table has a target).
    """
    started = time.perf_counter()
    runtime = entry_runtime()
    catalog, lead = runtime.catalog, runtime.settings.freshness_lead_seconds
    now = catalog.clock()
    # A run may start a moment before its scheduled time. A table falling due before the next
    # bucket would have its successor asked for at this run's own moment, which Prefect answers
    # with this run (same idempotency key), and no run would follow: it is refreshed now.
    decisions = plan_freshness(table_statuses(catalog, now), now, lead, BUCKET_SECONDS)
    due = [d for d in decisions if d.refresh]
    results = _refresh(due, runtime.settings)
    arm_pending_cleanups(runtime)  # once for the run: the catalog read costs more than a fetch
    by_table = {d.status.snapshot.table.id: r for d, r in zip(due, results, strict=True)}
    outcomes = [_outcome(d, by_table.get(d.status.snapshot.table.id)) for d in decisions]
    failed = frozenset(i for i, r in by_table.items() if isinstance(r, BaseException))
    after = catalog.clock()
    next_at = next_run_at(table_statuses(catalog, after), after, lead, failed=failed)
    schedule_freshness_quietly(next_at)
    result = FreshnessResult(
        tables_with_target=len(decisions),
        tables_refreshed=sum(o.refreshed for o in outcomes),
        tables_failed=len(failed),
        duration_ms=round((time.perf_counter() - started) * 1000),
        next_run_at=next_at,
        tables=outcomes,
    )
    publish_freshness(result)
    return result.model_dump(mode="json")


def _refresh(due: list[Decision], settings: Settings) -> list[Any]:
    """Refresh `due` in its order (most overdue first); each result or the exception it raised."""
    if not due:
        return []
    connections = {d.status.snapshot.table.connection_id for d in due}
    threads = min(len(due), settings.refresh_concurrency * len(connections), MAX_THREADS)
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=threads)
    task = configured_refresh_table(settings)
    with slots_kept_by_run(), runner:
        futures = [
            runner.submit(
                task,
                {
                    "connection_id": d.status.snapshot.table.connection_id,
                    "schema_name": d.status.snapshot.table.schema_name,
                    "table_name": d.status.snapshot.table.table_name,
                },
            )
            for d in due
        ]
        return [outcome(future) for future in futures]


def _outcome(decision: Decision, result: Any) -> FreshnessOutcome:
    table = decision.status.snapshot.table
    if not decision.refresh:
        status, reason, rows = "skipped", decision.reason, 0
    elif isinstance(result, BaseException):
        status, reason, rows = "failed", describe(result), 0
    else:
        assert isinstance(result, TableRefreshResult)
        status = "superseded" if result.superseded else "refreshed"
        reason, rows = decision.reason, result.rows_synced
    return FreshnessOutcome(
        connection_id=table.connection_id,
        schema_name=table.schema_name,
        table_name=table.table_name,
        age_seconds=decision.status.age_seconds,
        target_seconds=decision.status.policy.max_staleness_seconds or 0,
        refreshed=status in ("refreshed", "superseded"),
        status=status,
        reason=reason,
        rows_synced=rows,
    )
