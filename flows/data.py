"""Data refresh of one table, or of every table of a connection under a concurrency limit."""

from __future__ import annotations

import time
from typing import Any

from prefect import flow, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import publish_connection_refresh, publish_table_refresh
from flows.outcomes import describe, outcome
from runtime.container import get_runtime
from tasks.concurrency import connection_slots, ensure_connection_limit
from tasks.refresh_table import configured_refresh_table
from tasks.results import ConnectionRefreshResult, TableRefreshError, TableRefreshResult


@flow(
    name="refresh-table-data",
    flow_run_name="refresh-data conn={connection_id} {schema_name}.{table_name}",
)
def refresh_table_data(connection_id: int, schema_name: str, table_name: str) -> dict[str, Any]:
    runtime = get_runtime()
    runtime.catalog.get_table(connection_id, schema_name, table_name)
    ensure_connection_limit(connection_id, runtime.settings.refresh_concurrency)
    result: TableRefreshResult = configured_refresh_table()(connection_id, schema_name, table_name)
    publish_table_refresh(result)
    return result.model_dump()


@flow(name="refresh-connection-data", flow_run_name="refresh-data conn={connection_id}")
def refresh_connection_data(connection_id: int, cached_only: bool = False) -> dict[str, Any]:
    """Refresh every table (or every cached one); a failing table does not stop the others.

    Run it through run_connection_data_refresh, which sizes its task runner to the limit.
    """
    started = time.perf_counter()
    runtime = get_runtime()
    runtime.catalog.get_connection(connection_id)
    tables = [
        t
        for t in runtime.catalog.list_tables(connection_id)
        if not cached_only or t.parquet_path is not None
    ]
    limit = runtime.settings.refresh_concurrency
    ensure_connection_limit(connection_id, limit)
    # The run takes its share of the connection's slots once, for all its tables: acquiring and
    # releasing a slot per table costs two Prefect API calls and a lease thread each. Its task
    # runner has `limit` threads (run_connection_data_refresh), so it never fetches more at once.
    with connection_slots(connection_id, max(min(limit, len(tables)), 1)):
        futures = configured_refresh_table().map(
            connection_id,
            [t.schema_name for t in tables],
            [t.table_name for t in tables],
            slot_held=unmapped(True),
        )
        results = [outcome(future) for future in futures]
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
                    "status": "refreshed",
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
    )
    publish_connection_refresh(summary, rows)
    return summary.model_dump()


def run_connection_data_refresh(connection_id: int, cached_only: bool = False) -> dict[str, Any]:
    """Run the connection flow with as many worker threads as the per-connection limit."""
    limit = get_runtime().settings.refresh_concurrency
    runner: Any = ThreadPoolTaskRunner(max_workers=limit)
    configured = refresh_connection_data.with_options(task_runner=runner)
    return configured(connection_id, cached_only)
