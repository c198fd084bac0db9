"""What every source module provides to `sources.api`, and helpers they share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import groupby
from typing import Any

import pyarrow as pa
from sqlalchemy.types import TypeEngine

from sources.cursor import CursorBound, sql_literal
from sources.metadata import TableMetadata

SYSTEM_SCHEMAS = frozenset(
    {"information_schema", "pg_catalog", "pg_toast", "mysql", "performance_schema", "sys"}
)


@dataclass(frozen=True)
class Column:
    """A source column: its Arrow field and how the driver reads it, if it needs to know.

    `read_as` is a SQL type to cast to (PostgreSQL, DuckDB) or the SQLAlchemy type to read with.
    """

    schema_name: str
    table_name: str
    field: pa.Field
    read_as: str | TypeEngine[Any] | None = None


@dataclass(frozen=True)
class Stream:
    """An open read: the table's schema as it is now (None: gone) and its batches, lazily."""

    current_schema: pa.Schema | None
    batches: Callable[[], Iterator[pa.RecordBatch]]


@dataclass(frozen=True)
class Copy:
    """An open read that writes the table's Parquet file itself (DuckDB): the table's schema
    as it is now (None: gone) and `write(local_path) -> rows`. A failed write of the file
    raises TargetWriteError."""

    current_schema: pa.Schema | None
    write: Callable[[str], int]


def group_tables(columns: Iterable[Column]) -> list[TableMetadata]:
    """Tables from columns listed table by table in ordinal order."""
    return [
        TableMetadata(schema_name, table_name, pa.schema([c.field for c in table_columns]))
        for (schema_name, table_name), table_columns in groupby(
            columns, key=lambda c: (c.schema_name, c.table_name)
        )
    ]


def schema_of(columns: list[Column]) -> pa.Schema | None:
    return pa.schema([c.field for c in columns]) if columns else None


def quote_ident(name: str) -> str:
    """An identifier quoted the SQL-standard way (PostgreSQL, DuckDB)."""
    return '"' + name.replace('"', '""') + '"'


def where_past(since: CursorBound | None) -> str:
    """The WHERE clause of an incremental read in PostgreSQL and DuckDB ('' for a full one)."""
    if since is None:
        return ""
    return f" WHERE {quote_ident(since.column)} {since.operator} {sql_literal(since.value)}"
