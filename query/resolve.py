"""The snapshot of each table a query reads; a table not cached yet is fetched first."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from catalog import Catalog, ConnectionNotFoundError, Snapshot, TableNotFoundError
from query.errors import UnknownTableError
from query.locks import KeyedLocks
from query.names import TableName
from runtime.container import Runtime

# Fetches a table into the cache (the query's runtime, connection id, schema, table): the query
# side is handed one (the refresh task, in the webhook) rather than importing the layer that
# refreshes.
FetchTable = Callable[[Runtime, int, str, str], object]

# One lock per table being fetched (connection id, schema, table), shared by an engine's queries.
FetchLocks = KeyedLocks[tuple[int, str, str]]


def current_files(
    runtime: Runtime,
    names: list[TableName],
    fetch: FetchTable,
    fetch_locks: FetchLocks,
    max_staleness_seconds: float | None = None,
) -> dict[TableName, Snapshot]:
    """The live snapshot of each table now, fetching uncached tables (lazy caching), each
    once however many queries holding the same `fetch_locks` ask at once.

    With `max_staleness_seconds`, a table last synced longer ago than that is refreshed (by
    its policy) first. Every name is checked before anything is fetched, so a query naming an
    unknown table fetches nothing.
    """
    snapshots = {name: _snapshot(runtime.catalog, name) for name in names}
    return {
        name: snapshot
        if _fresh_enough(runtime, snapshot, max_staleness_seconds)
        else _fetch(runtime, name, snapshot, fetch, fetch_locks, max_staleness_seconds)
        for name, snapshot in snapshots.items()
    }


def _fresh_enough(runtime: Runtime, snapshot: Snapshot, max_staleness: float | None) -> bool:
    table = snapshot.table
    if table.parquet_path is None:
        return False
    if max_staleness is None:
        return True
    oldest = runtime.catalog.clock() - timedelta(seconds=max_staleness)
    return table.last_sync is not None and table.last_sync >= oldest


def _fetch(
    runtime: Runtime,
    name: TableName,
    snapshot: Snapshot,
    fetch: FetchTable,
    fetch_locks: FetchLocks,
    max_staleness: float | None,
) -> Snapshot:
    """Refresh a table with `fetch`, once however many queries ask at once."""
    table = snapshot.table
    with fetch_locks((table.connection_id, table.schema_name, table.table_name)):
        snapshot = _snapshot(runtime.catalog, name)  # another query may have fetched it meanwhile
        if not _fresh_enough(runtime, snapshot, max_staleness):
            fetch(runtime, table.connection_id, table.schema_name, table.table_name)
            snapshot = _snapshot(runtime.catalog, name)
    if snapshot.table.parquet_path is None:
        raise RuntimeError(f"{name.sql} is still not cached after fetching it")
    return snapshot


def _snapshot(catalog: Catalog, name: TableName) -> Snapshot:
    try:
        connection_id = catalog.get_connection_by_name(name.connection).id
        return catalog.snapshot(connection_id, name.schema, name.table)
    except ConnectionNotFoundError:
        reason = f"no connection is named {name.connection!r}"
    except TableNotFoundError:
        reason = f"connection {name.connection!r} has no table {name.schema}.{name.table}"
    raise UnknownTableError(name.sql, reason)
