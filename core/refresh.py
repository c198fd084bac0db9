"""Refresh one table: stream the source into a new cache file, then swap it in atomically.

Prefect-free: the caller hands in what the orchestrator provides, the connection's fetch slot
and where the fetch's progress goes (tasks/refresh_table.py hands in Prefect's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

import pyarrow as pa

from catalog import TableRecord
from core.access import SourceAccess, grace_deadline, source_key
from core.cache_errors import naming_the_table
from core.incremental import refresh_by_cursor
from core.policy import TablePolicy, table_policy
from core.progress import FetchProgress, Publish, fetch_progress
from core.results import TableRefreshResult
from runtime.container import Runtime
from sources import TableMetadata, open_reader, schema_from_json, write_parquet, writes_parquet
from storage import CacheStorage, StorageError

# Holds one of the connection's fetch slots while the source is read.
Slot = Callable[[], AbstractContextManager[None]]


def fetch_and_swap(
    runtime: Runtime,
    access: SourceAccess,
    connection_id: int,
    schema_name: str,
    table_name: str,
    *,
    slot: Slot,
    publish: Publish,
    full: bool = False,
) -> TableRefreshResult:
    """Fetch a table into a new versioned Parquet file and make it the live one.

    An append or merge table reads only what changed, by its policy (core/incremental.py),
    unless `full`. The source is read holding `slot`; the fetch's progress goes to `publish`.
    A failure anywhere removes the new file and leaves the catalog as it was. When a refresh
    whose snapshot started later has been swapped in meanwhile, the new file is queued for
    deletion instead and the result says `superseded`.
    """
    catalog, storage = runtime.catalog, runtime.storage
    started = time.perf_counter()
    table = catalog.get_table(connection_id, schema_name, table_name)
    policy = table_policy(catalog, table, lambda: source_key(access, schema_name, table_name))
    if policy.incremental:
        return _refresh_by_policy(runtime, access, policy, table, slot, publish, full, started)
    metadata = TableMetadata(schema_name, table_name, schema_from_json(table.arrow_schema_json))
    path = storage.new_version_path(connection_id, schema_name, table_name)
    progress = fetch_progress(
        access.name,
        schema_name,
        table_name,
        lambda: _rows_of(storage, table.parquet_path),
        publish,
        runtime.settings.progress_interval_seconds,
    )
    with progress:
        with slot():
            snapshot_started_at = catalog.clock()  # before the source is read, once a slot is held
            with naming_the_table(access.name, schema_name, table_name):
                rows = _fetch(access, metadata, storage, path, progress)
        progress.finish(rows)
    try:
        swapped = catalog.swap(
            connection_id,
            schema_name,
            table_name,
            path,
            snapshot_started_at=snapshot_started_at,
            delete_after=grace_deadline(runtime),
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
        superseded=swapped.superseded,
    )


def _refresh_by_policy(
    runtime: Runtime,
    access: SourceAccess,
    policy: TablePolicy,
    table: TableRecord,
    slot: Slot,
    publish: Publish,
    full: bool,
    started: float,
) -> TableRefreshResult:
    """Refresh the append or merge `table` by its cursor `policy` (`started`: the refresh's
    perf_counter start)."""
    catalog = runtime.catalog
    snapshot = catalog.snapshot(table.connection_id, table.schema_name, table.table_name)
    # A read past the mark brings an unknown share of the table: the rows so far, no percentage.
    progress = fetch_progress(
        access.name,
        table.schema_name,
        table.table_name,
        lambda: None,
        publish,
        runtime.settings.progress_interval_seconds,
    )
    with progress:
        outcome = refresh_by_cursor(
            catalog,
            runtime.storage,
            access,
            snapshot,
            policy,
            full=full,
            grace=timedelta(seconds=runtime.settings.deletion_grace_seconds),
            compact_after_files=runtime.settings.compact_after_files,
            hold_source=slot,
            watch=progress.reading,
        )
        progress.finish(outcome.rows_synced)
    return TableRefreshResult(
        connection_id=table.connection_id,
        schema_name=table.schema_name,
        table_name=table.table_name,
        rows_synced=outcome.rows_synced,
        duration_ms=round((time.perf_counter() - started) * 1000),
        superseded=outcome.superseded,
        mode=policy.mode.value,
        incremental=outcome.incremental,
        reason=outcome.reason,
        files=outcome.files,
        compacted=outcome.compacted,
    )


def _fetch(
    access: SourceAccess,
    table: TableMetadata,
    storage: CacheStorage,
    path: str,
    progress: FetchProgress,
) -> int:
    """Write the table into the new file `path`: by the source itself when it writes Parquet
    (DuckDB, on all its threads: its progress is its start and its end), else streamed through
    pyarrow's writer, reporting progress as rows arrive."""
    if writes_parquet(access.config):
        return storage.write_file(
            path,
            lambda target: write_parquet(
                access.config, access.password, table, target, connection_name=access.name
            ),
        )
    with open_reader(access.config, access.password, table, connection_name=access.name) as r:
        return storage.write_parquet(path, progress.reading(r))


def _rows_of(storage: CacheStorage, path: str | None) -> int | None:
    """The rows of the cache file `path`, if there is one and it can be read."""
    if path is None:
        return None
    try:
        return storage.row_count(path)
    except (StorageError, ValueError, pa.ArrowException):
        return None  # gone meanwhile, or unreadable: no estimate
