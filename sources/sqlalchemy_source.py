"""Any SQLAlchemy URL: MySQL/MariaDB from information_schema, others by multi-reflection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.engine.reflection import Inspector, ObjectKind
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeEngine

from sources.arrow import decimal_type, rows_to_batch
from sources.config import SqlAlchemyConfig
from sources.cursor import CursorBound
from sources.driver import SYSTEM_SCHEMAS, Column, Stream, group_tables, schema_of
from sources.errors import (
    SourceAuthError,
    SourceError,
    SourceSchemaChangedError,
    SourceTableNotFoundError,
    SourceUnavailableError,
)
from sources.metadata import TableMetadata

CONNECT_TIMEOUT = 10
_MYSQL = frozenset({"mysql", "mariadb"})

# SQLAlchemy's MySQL reflection runs one query per table; information_schema needs one in all.
_MYSQL_COLUMNS_SQL = sa.text(
    """
SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, IS_NULLABLE, DATA_TYPE, COLUMN_TYPE,
       NUMERIC_PRECISION, NUMERIC_SCALE
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA NOT IN :system
  AND (:schema IS NULL OR TABLE_SCHEMA = :schema)
  AND (:table IS NULL OR TABLE_NAME = :table)
ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION
"""
).bindparams(sa.bindparam("system", expanding=True))

_MYSQL_INTEGERS = {"tinyint": 8, "smallint": 16, "mediumint": 32, "int": 32, "bigint": 64}
_MYSQL_TYPES: dict[str, pa.DataType] = {
    "float": pa.float32(),
    "double": pa.float64(),
    "year": pa.int16(),
    "date": pa.date32(),
    "datetime": pa.timestamp("us"),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "time": pa.time64("us"),
    **dict.fromkeys(
        ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "bit"), pa.binary()
    ),
}
# Reflected types map through the Python type they read as; what is not listed reads as text.
_PYTHON_TYPES: dict[type, pa.DataType] = {
    bool: pa.bool_(),
    int: pa.int64(),
    float: pa.float64(),  # also REAL: 4 bytes in PostgreSQL, 8 in SQLite
    dt.date: pa.date32(),
    dt.time: pa.time64("us"),
    dt.timedelta: pa.duration("us"),
    bytes: pa.binary(),
}
_MYSQL_SESSION = "SET time_zone = '+00:00'"


def discover(config: SqlAlchemyConfig, password: str | None) -> list[TableMetadata]:
    engine = _engine(config, password)
    try:
        with engine.connect() as conn:
            return group_tables(_columns(conn))
    finally:
        engine.dispose()


@contextmanager
def open_stream(
    config: SqlAlchemyConfig,
    password: str | None,
    table: TableMetadata,
    batch_rows: int,
    since: CursorBound | None = None,
) -> Iterator[Stream]:
    engine = _engine(config, password)
    try:
        with engine.connect() as conn:
            columns = _columns(conn, (table.schema_name, table.table_name))
            current = schema_of(columns)

            def batches() -> Iterator[pa.RecordBatch]:
                source = sa.table(
                    sa.sql.quoted_name(table.table_name, quote=True),
                    *(
                        sa.column(sa.sql.quoted_name(c.field.name, quote=True), _read_type(c))
                        for c in columns
                    ),
                    schema=sa.sql.quoted_name(table.schema_name, quote=True),
                )
                query = sa.select(*source.c)
                if since is not None:
                    column = source.c[since.column]
                    past = column >= since.value if since.inclusive else column > since.value
                    query = query.where(past)
                stream = conn.execution_options(stream_results=True, yield_per=batch_rows)
                result = stream.execute(query)
                for rows in result.partitions(batch_rows):
                    yield rows_to_batch(rows, current)

            yield Stream(current, batches)
    finally:
        engine.dispose()


def primary_key(
    config: SqlAlchemyConfig, password: str | None, schema_name: str, table_name: str
) -> list[str]:
    engine = _engine(config, password)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            schema = None if conn.dialect.name == "sqlite" else schema_name
            constraint = inspector.get_pk_constraint(table_name, schema=schema)
    finally:
        engine.dispose()
    return list(constraint.get("constrained_columns") or [])


def _read_type(column: Column) -> TypeEngine[Any] | None:
    """The reflected type, so that its result processing applies; None reads raw driver values."""
    return column.read_as if isinstance(column.read_as, TypeEngine) else None


def classify(exc: Exception) -> type[SourceError]:
    if isinstance(exc, sa_exc.NoSuchTableError):
        return SourceTableNotFoundError
    if isinstance(exc, FileNotFoundError | sa_exc.TimeoutError):
        return SourceUnavailableError
    original = getattr(exc, "orig", None) or exc
    code = original.args[0] if original.args and isinstance(original.args[0], int) else None
    sqlstate = getattr(original, "sqlstate", None) or ""
    text = str(original).lower()
    if code in (1044, 1045, 1698) or sqlstate.startswith("28") or "authentication" in text:
        return SourceAuthError
    if code == 1146 or sqlstate == "42P01" or "no such table" in text:
        return SourceTableNotFoundError
    if code == 1054 or sqlstate == "42703" or "no such column" in text:
        return SourceSchemaChangedError
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or code in (2003, 2006):
        return SourceUnavailableError
    return SourceError


def _engine(config: SqlAlchemyConfig, password: str | None) -> Engine:
    url = make_url(config.url)
    if password is not None:
        url = url.set(password=password)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend in _MYSQL:
        connect_args = {"connect_timeout": CONNECT_TIMEOUT, "init_command": _MYSQL_SESSION}
    elif backend == "postgresql":
        connect_args = {"connect_timeout": CONNECT_TIMEOUT}
    elif backend == "sqlite":
        _require_sqlite_file(url)
    return sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)


def _require_sqlite_file(url: URL) -> None:
    """SQLite would create a missing file: a path that does not exist is an error instead."""
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file:")
    if not in_memory and not Path(database).is_file():
        raise FileNotFoundError(f"SQLite file {database!r} does not exist")


def _columns(conn: Connection, only: tuple[str, str] | None = None) -> list[Column]:
    if conn.dialect.name in _MYSQL:
        return _mysql_columns(conn, only)
    return _reflected_columns(sa.inspect(conn), only)


def _mysql_columns(conn: Connection, only: tuple[str, str] | None) -> list[Column]:
    schema, table = only or (conn.engine.url.database, None)
    rows = conn.execute(
        _MYSQL_COLUMNS_SQL, {"system": sorted(SYSTEM_SCHEMAS), "schema": schema, "table": table}
    )
    return [
        Column(
            row.TABLE_SCHEMA,
            row.TABLE_NAME,
            pa.field(row.COLUMN_NAME, _mysql_arrow(row), nullable=row.IS_NULLABLE == "YES"),
        )
        for row in rows
    ]


def _mysql_arrow(row: Any) -> pa.DataType:
    data_type, column_type = row.DATA_TYPE.lower(), row.COLUMN_TYPE.lower()
    if data_type in _MYSQL_INTEGERS:
        return _integer(_MYSQL_INTEGERS[data_type], unsigned="unsigned" in column_type)
    if data_type == "decimal":
        precision, scale = int(row.NUMERIC_PRECISION), int(row.NUMERIC_SCALE)
        return decimal_type(precision, scale)
    return _MYSQL_TYPES.get(data_type, pa.string())


def _integer(bits: int, *, unsigned: bool) -> pa.DataType:
    return getattr(pa, f"{'u' if unsigned else ''}int{bits}")()


def _reflected_columns(inspector: Inspector, only: tuple[str, str] | None) -> list[Column]:
    if only is not None:
        schema, table = only
        try:
            found = inspector.get_columns(table, schema=schema)
        except sa_exc.NoSuchTableError:
            found = []
        return [_reflected(schema, table, c) for c in found]
    columns = []
    for listed in _schemas(inspector):
        reflected = inspector.get_multi_columns(schema=listed, kind=ObjectKind.ANY)
        name = listed or inspector.default_schema_name or ""
        for (_, table), found in sorted(reflected.items()):
            columns += [_reflected(name, table, c) for c in found]
    return columns


def _schemas(inspector: Inspector) -> list[str | None]:
    if inspector.dialect.name == "sqlite":
        return [None]
    return [s for s in inspector.get_schema_names() if s not in SYSTEM_SCHEMAS]


def _reflected(schema: str, table: str, column: Any) -> Column:
    sql_type = column["type"]
    field = pa.field(column["name"], _sqlalchemy_arrow(sql_type), column["nullable"])
    return Column(schema, table, field, sql_type)


def _sqlalchemy_arrow(sql_type: TypeEngine[Any]) -> pa.DataType:
    """The Arrow type for a reflected SQLAlchemy type."""
    if isinstance(sql_type, sa.ARRAY):
        return pa.list_(_sqlalchemy_arrow(sql_type.item_type))
    try:
        python_type = sql_type.python_type
    except NotImplementedError:
        return pa.string()
    if isinstance(sql_type, sa.SmallInteger):
        return pa.int16()
    if python_type is dt.datetime:
        return pa.timestamp("us", tz="UTC" if getattr(sql_type, "timezone", False) else None)
    if python_type is Decimal:
        precision, scale = getattr(sql_type, "precision", None), getattr(sql_type, "scale", None)
        if precision and scale is not None:
            return decimal_type(precision, scale)
        return pa.string()
    return _PYTHON_TYPES.get(python_type, pa.string())
