"""The cache file of each table a query reads; a table not cached yet is fetched first."""

from __future__ import annotations

from catalog import Catalog, ConnectionNotFoundError, TableNotFoundError, TableRecord
from query.errors import UnknownTableError
from query.locks import KeyedLocks
from query.names import TableName
from runtime.container import Runtime
from tasks.concurrency import ensure_connection_limit
from tasks.refresh_table import configured_refresh_table

_fetch_locks: KeyedLocks[tuple[int, str, str]] = KeyedLocks()
# Prefect's upsert of a concurrency limit is not atomic: one at a time per connection here.
_limit_locks: KeyedLocks[int] = KeyedLocks()


def current_files(runtime: Runtime, names: list[TableName]) -> dict[TableName, str]:
    """The live cache file of each table now, fetching uncached tables (lazy caching).

    Every name is checked before anything is fetched, so a query naming an unknown table
    fetches nothing.
    """
    tables = {name: _table(runtime.catalog, name) for name in names}
    return {
        name: table.parquet_path or _fetch(runtime, name, table) for name, table in tables.items()
    }


def _fetch(runtime: Runtime, name: TableName, table: TableRecord) -> str:
    """Fetch a table through the refresh_table task, once however many queries ask at once."""
    with _fetch_locks((table.connection_id, table.schema_name, table.table_name)):
        table = _table(runtime.catalog, name)  # another query may have fetched it meanwhile
        if table.parquet_path is None:
            with _limit_locks(table.connection_id):
                ensure_connection_limit(table.connection_id, runtime.settings.refresh_concurrency)
            configured_refresh_table()(table.connection_id, table.schema_name, table.table_name)
            table = _table(runtime.catalog, name)
    if table.parquet_path is None:
        raise RuntimeError(f"{name.sql} is still not cached after fetching it")
    return table.parquet_path


def _table(catalog: Catalog, name: TableName) -> TableRecord:
    try:
        connection_id = catalog.get_connection_by_name(name.connection).id
        return catalog.get_table(connection_id, name.schema, name.table)
    except ConnectionNotFoundError:
        reason = f"no connection is named {name.connection!r}"
    except TableNotFoundError:
        reason = f"connection {name.connection!r} has no table {name.schema}.{name.table}"
    raise UnknownTableError(name.sql, reason)
