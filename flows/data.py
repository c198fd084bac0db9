"""Data refresh of one table, or of every table of a connection under a concurrency limit."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from core.results import ConnectionRefreshResult, TableRefreshError, TableRefreshResult
from flows.artifacts import publish_connection_refresh, publish_table_refresh
from flows.failures import failing_with_the_cause
from flows.outcomes import describe, outcome
from orchestration.scheduling import arm_pending_cleanups
from runtime.container import Runtime, entry_runtime
from tasks.concurrency import slots_kept_by_run
from tasks.refresh_table import configured_refresh_table


def refresh_one_table(
    runtime: Runtime, connection_id: int, schema_name: str, table_name: str, full: bool = False
) -> dict[str, Any]:
    """Refresh one table in the current flow run (a `refresh-table` task run) and publish it."""
    runtime.catalog.get_table(connection_id, schema_name, table_name)
    result: TableRefreshResult = configured_refresh_table(runtime.settings)(
        connection_id, schema_name, table_name, full=full
    )
    arm_pending_cleanups(runtime)
    publish_table_refresh(result)
    return result.model_dump()


@flow(
    name="refresh-table-data",
    flow_run_name="refresh-data conn={connection_id} {schema_name}.{table_name}",
)
@failing_with_the_cause
def refresh_table_data(
    connection_id: int, schema_name: str, table_name: str, full: bool = False
) -> dict[str, Any]:
    """Fetch one table into a new cache file and swap it in.

    Args:
        connection_id: The table's connection.
        schema_name: The table's schema.
        table_name: The table.
        full: Read an append or merge table in full too (not only what changed).
    """
    return refresh_one_table(entry_runtime(), connection_id, schema_name, table_name, full)


@flow(name="refresh-connection-data", flow_run_name="refresh-data conn={connection_id}")
@failing_with_the_cause
def refresh_connection_data(
    connection_id: int, cached_only: bool = False, full: bool = False
) -> dict[str, Any]:
    """Refresh every table (or every cached one); a failing table does not stop the others.

    Args:
        connection_id: The connection whose tables to refresh.
        cached_only: Only the tables cached already.
        full: Read append and merge tables in full too (not only what changed).
    """
    return refresh_all_tables(entry_runtime(), connection_id, cached_only, full)


def refresh_all_tables(
    runtime: Runtime, connection_id: int, cached_only: bool = False, full: bool = False
) -> dict[str, Any]:
    """Refresh a connection's tables in the current flow run: a `refresh-table` task run each.

    As many threads as the per-connection limit; each fetch holds a slot of the limit (across
    every run and worker), kept for the thread's next fetch unless a single fetch waits for one.
    """
    started = time.perf_counter()
    runtime.catalog.get_connection(connection_id)
    tables = [
        t
        for t in runtime.catalog.list_tables(connection_id)
        if not cached_only or t.parquet_path is not None
    ]
    threads = max(min(runtime.settings.refresh_concurrency, len(tables)), 1)
    runner: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=threads)
    with slots_kept_by_run(), runner:
        futures = runner.map(
            configured_refresh_table(runtime.settings),
            {
                "connection_id": unmapped(connection_id),
                "schema_name": [t.schema_name for t in tables],
                "table_name": [t.table_name for t in tables],
                "full": unmapped(full),
            },
        )
        results = [outcome(future) for future in futures]
    # Once for the whole run: the catalog read costs more than a tiny table's fetch.
    arm_pending_cleanups(runtime)
    refreshed: list[TableRefreshResult] = []
    errors: list[TableRefreshError] = []
    rows: list[dict[str, Any]] = []
    for table, result in zip(tables, results, strict=True):
        if isinstance(result, BaseException):
            error = TableRefreshError(
                schema_name=table.schema_name, table_name=table.table_name, error=describe(result)
            )
            errors.append(error)
            rows.append({**error.model_dump(), "status": "failed", "rows_synced": 0})
        else:
            refreshed.append(result)
            rows.append(
                {
                    "schema_name": table.schema_name,
                    "table_name": table.table_name,
                    "status": "superseded" if result.superseded else "refreshed",
                    "rows_synced": result.rows_synced,
                    "error": "",
                }
            )
    summary = ConnectionRefreshResult(
        connection_id=connection_id,
        tables_refreshed=len(refreshed),
        tables_failed=len(errors),
        total_rows=sum(r.rows_synced for r in refreshed),
        duration_ms=round((time.perf_counter() - started) * 1000),
        errors=errors,
        tables_superseded=sum(r.superseded for r in refreshed),
    )
    publish_connection_refresh(summary, rows)
    return summary.model_dump()
