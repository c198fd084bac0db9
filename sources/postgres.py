"""PostgreSQL: discovery from pg_catalog in one query, reads as an Arrow stream.

The read path is ADBC's PostgreSQL driver. It is as fast as connectorx and about 3x faster than a
server-side cursor (bench/fetch_postgres.py), and unlike connectorx it releases the GIL while it
waits, so the parallel fetches of a connection refresh really overlap. connectorx stays a tested
alternative (`method="connectorx"`); a psycopg server-side cursor takes over when the fast path
cannot start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal
from urllib.parse import quote, urlencode

import adbc_driver_postgresql.dbapi as adbc_postgresql
import connectorx
import psycopg
import pyarrow as pa

from sources.arrow import decimal_type, rows_to_batch
from sources.config import PostgresConfig
from sources.cursor import CursorBound
from sources.driver import Column, Stream, group_tables, quote_ident, schema_of, where_past
from sources.errors import (
    SourceAuthError,
    SourceError,
    SourceSchemaChangedError,
    SourceTableNotFoundError,
    SourceUnavailableError,
    redact,
)
from sources.metadata import TableMetadata

_log = logging.getLogger(__name__)

ReadMethod = Literal["adbc", "connectorx", "cursor"]
DEFAULT_METHOD: ReadMethod = "adbc"

_COLUMNS_SQL = """
SELECT n.nspname, c.relname, a.attname, a.attnotnull, bt.typname, bt.typtype,
       et.typname, et.typtype, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_catalog.pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE a.attnum > 0 AND NOT a.attisdropped
  AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('information_schema', 'pg_catalog', 'pg_toast')
  AND n.nspname !~ '^pg_(toast_)?temp_'
  AND (%(schema)s::text IS NULL OR (n.nspname = %(schema)s AND c.relname = %(table)s))
ORDER BY n.nspname, c.relname, a.attnum
"""

_PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
WHERE i.indisprimary
  AND i.indrelid = to_regclass(format('%%I.%%I', %(schema)s::text, %(table)s::text))
ORDER BY array_position(i.indkey, a.attnum)
"""

# Types ADBC and connectorx carry exactly; everything else is cast to text in the query.
_NATIVE: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "bytea": pa.binary(),
}
_NATIVE_IN_ARRAYS = frozenset(
    {"int2", "int4", "int8", "float4", "float8", "bool", "text", "varchar"}
)
# How connectorx reports a connection it could not open or lost.
_CONNECTION_LOST = (
    "error connecting",
    "timed out",
    "connection reset",
    "connection closed",
    "terminating connection",
    "kind: io",
)


def discover(config: PostgresConfig, password: str | None) -> list[TableMetadata]:
    with _connect(config, password) as conn:
        return group_tables(_columns(conn))


@contextmanager
def open_stream(
    config: PostgresConfig,
    password: str | None,
    table: TableMetadata,
    batch_rows: int,
    since: CursorBound | None = None,
    *,
    method: ReadMethod = DEFAULT_METHOD,
) -> Iterator[Stream]:
    with _connect(config, password) as conn:
        columns = _columns(conn, (table.schema_name, table.table_name))
        query = _select(table, columns, since)

        def cursor_batches() -> Iterator[pa.RecordBatch]:
            return _cursor_batches(conn, query, _wire_schema(columns), batch_rows)

        def batches() -> Iterator[pa.RecordBatch]:
            if method == "cursor":
                yield from cursor_batches()
                return
            fast = _FAST_READERS[method](_uri(config, password), query, batch_rows)
            try:
                first = next(fast, None)  # starts the read
            except Exception as exc:
                if classify(exc) is not SourceError:
                    # A timeout, a lost connection or a dropped table: the cursor would meet the
                    # same fate, so the read fails now instead of running the query twice.
                    raise
                cause = redact(f"{type(exc).__name__}: {exc}", password)
                _log.warning("%s could not read (%s): reading through a cursor", method, cause)
                yield from cursor_batches()
                return
            if first is not None:
                yield first
                yield from fast

        yield Stream(schema_of(columns), batches)


def classify(exc: Exception) -> type[SourceError]:
    sqlstate = getattr(exc, "sqlstate", None) or ""
    text = str(exc).lower()
    if sqlstate.startswith("28") or "password authentication failed" in text:
        return SourceAuthError
    if sqlstate == "42P01" or ("relation" in text and "does not exist" in text):
        return SourceTableNotFoundError
    if sqlstate in ("42703", "42804"):
        return SourceSchemaChangedError
    if sqlstate.startswith(("08", "57P")) or isinstance(exc, psycopg.OperationalError | OSError):
        return SourceUnavailableError
    if any(symptom in text for symptom in _CONNECTION_LOST):
        return SourceUnavailableError
    return SourceError


def _connect(config: PostgresConfig, password: str | None) -> psycopg.Connection[Any]:
    """An autocommit connection: no transaction stays open while connectorx reads."""
    return psycopg.connect(
        **_conninfo(config, password), application_name="freshcache", autocommit=True
    )


def _conninfo(config: PostgresConfig, password: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "user": config.user,
        "dbname": config.database,
        **_libpq_options(config),
    }
    if password is not None:
        info["password"] = password
    return info


def _libpq_options(config: PostgresConfig) -> dict[str, Any]:
    """The connection options every read path passes to libpq."""
    options: dict[str, Any] = {"connect_timeout": config.connect_timeout}
    if config.sslmode is not None:
        options["sslmode"] = config.sslmode
    if config.statement_timeout_seconds is not None:
        options["options"] = f"-c statement_timeout={config.statement_timeout_seconds * 1000}"
    return options


def _columns(conn: psycopg.Connection[Any], only: tuple[str, str] | None = None) -> list[Column]:
    schema, table = only or (None, None)
    rows = conn.execute(_COLUMNS_SQL, {"schema": schema, "table": table}).fetchall()
    return [_column(*row) for row in rows]


def _column(
    schema_name: str,
    table_name: str,
    name: str,
    not_null: bool,
    type_name: str,
    type_kind: str,
    element_name: str | None,
    element_kind: str | None,
    typmod: int,
) -> Column:
    if element_name is None:
        arrow_type, native = _scalar(type_name, type_kind, typmod)
        cast = None if native else "text"
    else:
        element, native = _scalar(element_name, element_kind or "b", typmod)
        native = native and element_name in _NATIVE_IN_ARRAYS
        if not (native or pa.types.is_date(element) or pa.types.is_decimal(element)):
            element = pa.string()
        arrow_type, cast = pa.list_(element), None if native else "text[]"
    return Column(schema_name, table_name, pa.field(name, arrow_type, not not_null), cast)


def _scalar(type_name: str, type_kind: str, typmod: int) -> tuple[pa.DataType, bool]:
    """The Arrow type of a non-array type, and whether it is read without a cast to text."""
    if type_kind == "b" and type_name in _NATIVE:
        return _NATIVE[type_name], True
    if type_name == "numeric" and typmod >= 4:
        precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
        if scale <= precision <= 76:
            return decimal_type(precision, scale), False  # read as exact text, cast in Arrow
    return pa.string(), False


def _select(table: TableMetadata, columns: list[Column], since: CursorBound | None) -> str:
    expressions = [
        f"{quote_ident(c.field.name)}::{c.read_as}" if c.read_as else quote_ident(c.field.name)
        for c in columns
    ]
    source = f"{quote_ident(table.schema_name)}.{quote_ident(table.table_name)}"
    return f"SELECT {', '.join(expressions)} FROM {source}{where_past(since)}"


def primary_key(
    config: PostgresConfig, password: str | None, schema_name: str, table_name: str
) -> list[str]:
    with _connect(config, password) as conn:
        rows = conn.execute(_PRIMARY_KEY_SQL, {"schema": schema_name, "table": table_name})
        return [name for (name,) in rows]


def _wire_schema(columns: list[Column]) -> pa.Schema:
    """What the query returns: text casts arrive as (lists of) strings."""
    return pa.schema([c.field.with_type(_wire_type(c)) for c in columns])


def _wire_type(column: Column) -> pa.DataType:
    if column.read_as == "text":
        return pa.string()
    if column.read_as == "text[]":
        return pa.list_(pa.string())
    return column.field.type


# By default ADBC reads pg_type and pg_attribute to resolve every type at connect (~40 ms, more
# on a large database); the query above returns built-in types only, which it knows already.
ADBC_OPTIONS = {"adbc.postgresql.type_resolver_mode": "builtin"}


def _adbc_batches(uri: str, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """ADBC's PostgreSQL driver (COPY in binary); it releases the GIL while it waits."""
    with (
        adbc_postgresql.connect(uri, db_kwargs=ADBC_OPTIONS) as conn,
        conn.cursor() as cursor,
    ):
        cursor.execute(query)
        for batch in cursor.fetch_record_batch():
            yield from _slices(batch, batch_rows)


def _connectorx_batches(uri: str, query: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    reader = _connectorx_call(
        connectorx.read_sql, uri, query, return_type="arrow_stream", batch_size=batch_rows
    )
    while (batch := _connectorx_call(reader.read_next_batch)) is not None:
        yield batch


_FAST_READERS: dict[str, Callable[[str, str, int], Iterator[pa.RecordBatch]]] = {
    "adbc": _adbc_batches,
    "connectorx": _connectorx_batches,
}


def _slices(batch: pa.RecordBatch, rows: int) -> Iterator[pa.RecordBatch]:
    """ADBC sizes batches in bytes; `batch_rows` still bounds every batch (zero-copy)."""
    for offset in range(0, batch.num_rows, rows):
        yield batch.slice(offset, rows)


class ConnectorxError(RuntimeError):
    """connectorx failed; its Rust panics (BaseException subclasses) are turned into this."""


def _connectorx_call(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`function(...)`, with a connectorx error or panic raised as ConnectorxError.

    Returns None at the end of a reader rather than StopIteration.
    """
    try:
        return function(*args, **kwargs)
    except StopIteration:
        return None
    except Exception as exc:
        raise ConnectorxError(str(exc)) from None
    except BaseException as exc:
        if type(exc).__name__ != "PanicException":
            raise
        raise ConnectorxError(f"connectorx panicked: {exc}") from None


def _uri(config: PostgresConfig, password: str | None) -> str:
    """A libpq connection URI (ADBC and connectorx take one)."""
    credentials = quote(config.user, safe="")
    if password is not None:
        credentials += ":" + quote(password, safe="")
    host = f"[{config.host}]" if ":" in config.host else config.host
    database = quote(config.database, safe="")
    query = urlencode(_libpq_options(config), quote_via=quote)
    return f"postgresql://{credentials}@{host}:{config.port}/{database}?{query}"


def _cursor_batches(
    conn: psycopg.Connection[Any], query: str, schema: pa.Schema, batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """A server-side cursor: the robust, slower path."""
    with conn.transaction(), conn.cursor(name="freshcache_read") as cursor:
        cursor.itersize = batch_rows
        cursor.execute(query)
        while rows := cursor.fetchmany(batch_rows):
            yield rows_to_batch(rows, schema)
