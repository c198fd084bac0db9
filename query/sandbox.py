"""A fresh in-memory DuckDB per query that sees the cached tables it reads, and nothing else.

Each table is a view ``"<connection>"."<schema>"."<table>"`` over the cache file resolved when
the query started. Then the connection is locked down: no file, network or extension access
except reading exactly those files, and no configuration change afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import duckdb

from query.errors import QueryRejectedError
from query.names import TableName, quote_identifier, quote_literal
from storage import CacheStorage

_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "python_enable_replacements": False,  # no scans of Python variables by name
}


def open_connection() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:", config=_CONFIG)


def expose_tables(
    con: duckdb.DuckDBPyConnection, files: Mapping[TableName, str], storage: CacheStorage
) -> None:
    """Create a view per table over its cache file, then lock ``con`` down to those files."""
    _require_distinct_in_duckdb(files)
    storage.register_with_duckdb(con)
    paths = {name: storage.duckdb_path(path) for name, path in files.items()}
    for connection in sorted({name.connection for name in paths}):
        con.execute(f"ATTACH ':memory:' AS {quote_identifier(connection)}")
    for connection, schema in sorted({(name.connection, name.schema) for name in paths}):
        con.execute(
            f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(connection)}.{quote_identifier(schema)}"
        )
    for name, path in paths.items():
        con.execute(f"CREATE VIEW {name.sql} AS SELECT * FROM read_parquet({quote_literal(path)})")
    _lock_down(con, sorted(set(paths.values())))


def _require_distinct_in_duckdb(names: Iterable[TableName]) -> None:
    """DuckDB matches identifiers ignoring ASCII case: names differing only so cannot coexist."""
    seen: dict[tuple[str, ...], tuple[str, ...]] = {}
    for name in names:
        parts = (name.connection, name.schema, name.table)
        for depth in range(1, 4):
            spelled = parts[:depth]
            other = seen.setdefault(tuple(_ascii_lower(p) for p in spelled), spelled)
            if other != spelled:
                shown = [".".join(quote_identifier(p) for p in n) for n in (other, spelled)]
                raise QueryRejectedError(
                    f"{shown[0]} and {shown[1]} differ only in case, which DuckDB does not "
                    "tell apart: query them in separate queries"
                )


def _ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lock_down(con: duckdb.DuckDBPyConnection, allowed_paths: list[str]) -> None:
    allowed = ", ".join(quote_literal(path) for path in allowed_paths)
    con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ values come back in UTC
    con.execute(f"SET allowed_paths = [{allowed}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
