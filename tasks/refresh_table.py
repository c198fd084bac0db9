"""Refresh one table: stream the source into a new cache file, then swap it in atomically."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

from prefect import task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from runtime.container import get_runtime
from sources import SourceUnavailableError, TableMetadata, open_reader, schema_from_json
from tasks.concurrency import connection_slots
from tasks.context import grace_deadline, source_access
from tasks.results import TableRefreshResult


def refresh_table_data(
    connection_id: int, schema_name: str, table_name: str, slot_held: bool = False
) -> TableRefreshResult:
    """Fetch a table into a new versioned Parquet file and make it the live one.

    The fetch holds one of the connection's slots, unless the caller holds one for it
    (`slot_held`). A failure anywhere removes the new file and leaves the catalog as it was.
    """
    runtime = get_runtime()
    catalog, storage = runtime.catalog, runtime.storage
    started = time.perf_counter()
    connection = catalog.get_connection(connection_id)
    table = catalog.get_table(connection_id, schema_name, table_name)
    access = source_access(connection)
    metadata = TableMetadata(schema_name, table_name, schema_from_json(table.arrow_schema_json))
    path = storage.new_version_path(connection_id, schema_name, table_name)
    with (
        nullcontext() if slot_held else connection_slots(connection_id),
        open_reader(
            access.config, access.password, metadata, connection_name=access.name
        ) as reader,
    ):
        rows = storage.write_parquet(path, reader)
    try:
        catalog.swap(
            connection_id, schema_name, table_name, path, delete_after=grace_deadline(runtime)
        )
    except BaseException:
        storage.delete(path)
        raise
    return TableRefreshResult(
        connection_id=connection_id,
        schema_name=schema_name,
        table_name=table_name,
        rows_synced=rows,
        duration_ms=round((time.perf_counter() - started) * 1000),
    )


def is_transient_failure(_task: Any, _task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what may pass: an unreachable or dropped source, not a missing table."""
    try:
        state.result()
    except SourceUnavailableError:
        return True
    except BaseException:
        return False
    return False


@task(
    name="refresh-table",
    task_run_name="refresh-table conn={connection_id} {schema_name}.{table_name}",
    retries=2,
    retry_delay_seconds=[2, 8],
    retry_condition_fn=is_transient_failure,
    persist_result=False,
)
def refresh_table(
    connection_id: int, schema_name: str, table_name: str, slot_held: bool = False
) -> TableRefreshResult:
    return refresh_table_data(connection_id, schema_name, table_name, slot_held)


def configured_refresh_table() -> Any:
    """refresh_table with the retries the settings ask for."""
    settings = get_runtime().settings
    delay = settings.refresh_retry_delay_seconds
    return refresh_table.with_options(
        retries=settings.refresh_retries,
        retry_delay_seconds=[delay * 4**n for n in range(max(settings.refresh_retries, 1))],
    )
