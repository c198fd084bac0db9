"""DuckDB files: discovery from duckdb_columns(), reads through a read-only connection."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

import duckdb
import pyarrow as pa

from sources.arrow import decimal_type
from sources.config import DuckDBConfig
from sources.cursor import CursorBound
from sources.driver import (
    SYSTEM_SCHEMAS,
    Column,
    Copy,
    Stream,
    group_tables,
    quote_ident,
    schema_of,
    where_past,
)
from sources.errors import (
    SourceError,
    SourceTableNotFoundError,
    SourceUnavailableError,
    TargetWriteError,
)
from sources.metadata import TableMetadata

if TYPE_CHECKING:
    from duckdb.sqltypes import DuckDBPyType

MEMORY_LIMIT = "512MB"
THREADS = 2
# How DuckDB encodes a cache file (open_copy): zstd at DuckDB's default level and its default
# row groups, each written whole by one thread. 512Ki-row groups (storage/parquet.py's, for
# pyarrow) were 1.7% smaller on the bench table but took 2x the memory.
COPY_OPTIONS = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 3, ROW_GROUP_SIZE 122880"

_COLUMNS_SQL = """
SELECT schema_name, table_name, column_name, data_type, is_nullable
FROM duckdb_columns()
WHERE database_name = current_database() AND NOT internal
  AND schema_name NOT IN ({system})
  AND ($schema IS NULL OR (schema_name = $schema AND table_name = $table))
ORDER BY schema_name, table_name, column_index
""".format(system=", ".join(f"'{s}'" for s in sorted(SYSTEM_SCHEMAS)))

_SCALARS: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "utinyint": pa.uint8(),
    "usmallint": pa.uint16(),
    "uinteger": pa.uint32(),
    "ubigint": pa.uint64(),
    "float": pa.float32(),
    "double": pa.float64(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamp_s": pa.timestamp("s"),
    "timestamp_ms": pa.timestamp("ms"),
    "timestamp_ns": pa.timestamp("ns"),
    "timestamp with time zone": pa.timestamp("us", tz="UTC"),
    "blob": pa.binary(),
}


def discover(config: DuckDBConfig, password: str | None) -> list[TableMetadata]:
    with closing(_connect(config)) as con:
        return group_tables(_columns(con))


@contextmanager
def open_stream(
    config: DuckDBConfig,
    password: str | None,
    table: TableMetadata,
    batch_rows: int,
    since: CursorBound | None = None,
) -> Iterator[Stream]:
    with closing(_connect(config)) as con:
        columns = _columns(con, (table.schema_name, table.table_name))

        def batches() -> Iterator[pa.RecordBatch]:
            yield from con.sql(_select(table, columns, since)).to_arrow_reader(batch_rows)

        yield Stream(schema_of(columns), batches)


@contextmanager
def open_copy(
    config: DuckDBConfig,
    password: str | None,
    table: TableMetadata,
    since: CursorBound | None = None,
) -> Iterator[Copy]:
    """DuckDB writes the table's Parquet file itself: its writer encodes row groups on every
    thread, where pyarrow's writer encodes one column after the other on one."""
    with closing(_connect(config)) as con:
        columns = _columns(con, (table.schema_name, table.table_name))

        def write(target: str) -> int:
            query = _select(table, columns, since)
            statement = f"COPY ({query}) TO {_string(target)} ({COPY_OPTIONS})"
            try:
                row = con.execute(statement).fetchone()
            except duckdb.IOException as exc:
                # The source is open and read: an IO error here is the target's.
                raise _write_failure(exc, target) from None
            assert row is not None
            return int(row[0])

        yield Copy(schema_of(columns), write)


def _select(table: TableMetadata, columns: list[Column], since: CursorBound | None) -> str:
    """The table's rows, each column cast to the type it arrives as in Arrow."""
    select = ", ".join(
        f"CAST({quote_ident(c.field.name)} AS {c.read_as}) AS {quote_ident(c.field.name)}"
        for c in columns
    )
    source = f"{quote_ident(table.schema_name)}.{quote_ident(table.table_name)}"
    return f"SELECT {select} FROM {source}{where_past(since)}"


def _string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# DuckDB's IO errors carry the OS's text, not its errno.
_ERRNOS = {
    "no space left on device": errno.ENOSPC,
    "permission denied": errno.EACCES,
    "read-only file system": errno.EROFS,
    "disk quota exceeded": errno.EDQUOT,
}


def _write_failure(exc: duckdb.IOException, target: str) -> TargetWriteError:
    """The failed write of `target`, its message without the path."""
    message = str(exc).replace(target, "the file")
    lowered = message.lower()
    code = next((n for text, n in _ERRNOS.items() if text in lowered), errno.EIO)
    return TargetWriteError(code, os.strerror(code) if code != errno.EIO else message)


def primary_key(
    config: DuckDBConfig, password: str | None, schema_name: str, table_name: str
) -> list[str]:
    with closing(_connect(config)) as con:
        row = con.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE database_name = current_database() AND schema_name = ? AND table_name = ? "
            "AND constraint_type = 'PRIMARY KEY'",
            [schema_name, table_name],
        ).fetchone()
    return list(row[0]) if row else []


def classify(exc: Exception) -> type[SourceError]:
    if isinstance(exc, FileNotFoundError | duckdb.IOException):
        return SourceUnavailableError
    if isinstance(exc, duckdb.CatalogException):
        return SourceTableNotFoundError
    return SourceError


def _connect(config: DuckDBConfig) -> duckdb.DuckDBPyConnection:
    """A read-only connection with a capped buffer pool; a missing file is an error."""
    if not Path(config.path).is_file():
        raise FileNotFoundError(f"DuckDB file {config.path!r} does not exist")
    try:
        con = duckdb.connect(
            config.path, read_only=True, config={"memory_limit": MEMORY_LIMIT, "threads": THREADS}
        )
    except duckdb.Error as exc:
        # DuckDB names the file by its absolute path: name it as the connection's config does.
        message = str(exc)
        for resolved in {os.path.realpath(config.path), os.path.abspath(config.path)}:
            message = message.replace(resolved, config.path)
        raise type(exc)(message) from None
    con.execute("SET enable_progress_bar = false")  # it would print to the worker's stdout
    return con


def _columns(con: duckdb.DuckDBPyConnection, only: tuple[str, str] | None = None) -> list[Column]:
    schema, table = only or (None, None)
    rows = con.execute(_COLUMNS_SQL, {"schema": schema, "table": table}).fetchall()
    plans: dict[str, tuple[pa.DataType, str]] = {}
    columns = []
    for schema_name, table_name, name, data_type, nullable in rows:
        if data_type not in plans:
            plans[data_type] = _plan(con.type(data_type))
        arrow_type, target = plans[data_type]
        columns.append(
            Column(schema_name, table_name, pa.field(name, arrow_type, nullable=nullable), target)
        )
    return columns


def _plan(duck_type: DuckDBPyType) -> tuple[pa.DataType, str]:
    """The Arrow type for a DuckDB type, and the DuckDB type to cast to so it arrives as such."""
    kind = duck_type.id
    if kind in _SCALARS:
        return _SCALARS[kind], str(duck_type)
    if kind == "decimal":
        params = dict(duck_type.children)
        precision, scale = cast(int, params["precision"]), cast(int, params["scale"])
        return decimal_type(precision, scale), str(duck_type)
    if kind in ("list", "array"):
        child, target = _plan(_child(duck_type, "child"))
        return pa.list_(child), f"{target}[]"
    if kind == "struct":
        fields = [(name, *_plan(_child(duck_type, name))) for name, _ in duck_type.children]
        inner = ", ".join(f"{quote_ident(name)} {target}" for name, _, target in fields)
        return pa.struct([(name, arrow) for name, arrow, _ in fields]), f"STRUCT({inner})"
    if kind == "map":
        (key, key_target), (value, value_target) = (
            _plan(_child(duck_type, n)) for n in ("key", "value")
        )
        return pa.map_(key, value), f"MAP({key_target}, {value_target})"
    return pa.string(), "VARCHAR"


def _child(duck_type: DuckDBPyType, name: str) -> DuckDBPyType:
    return cast("DuckDBPyType", dict(duck_type.children)[name])
