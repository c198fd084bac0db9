"""run_query: one read-only SQL query over the current cache, with a row limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
from pydantic import BaseModel

from query.errors import QueryError, QueryRejectedError
from query.names import TableName
from query.parsing import referenced_tables
from query.resolve import current_files
from query.sandbox import expose_tables, open_connection
from query.values import json_safe
from runtime.container import get_runtime

# Failures of the system rather than of the SQL: they stay what they are (HTTP 500).
_SYSTEM_ERRORS = (
    duckdb.IOException,
    duckdb.HTTPException,
    duckdb.InternalException,
    duckdb.FatalException,
    duckdb.OutOfMemoryException,
)


class QueryResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    execution_time_ms: int
    truncated: bool


class PreparedQuery:
    """A query bound to the cache files that were live when it was prepared.

    A refresh that swaps a table's file afterwards does not change what this query reads.
    """

    def __init__(
        self,
        sql: str,
        con: duckdb.DuckDBPyConnection,
        files: dict[TableName, str],
        started: float,
    ) -> None:
        self.sql = sql
        self.files = files
        self._con = con
        self._started = started

    def run(self, row_limit: int) -> QueryResult:
        """Execute and fetch at most ``row_limit`` rows (one more is read to detect truncation)."""
        if row_limit < 0:
            raise ValueError(f"row_limit must not be negative, not {row_limit}")
        with _sql_errors():
            self._con.execute(self.sql)
            columns = [column[0] for column in self._con.description or []]
            fetched = self._con.fetchmany(row_limit + 1)
        rows = [[json_safe(value) for value in row] for row in fetched[:row_limit]]
        return QueryResult(
            columns=columns,
            rows=rows,
            row_count=len(rows),
            execution_time_ms=round((time.perf_counter() - self._started) * 1000),
            truncated=len(fetched) > row_limit,
        )

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> PreparedQuery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def prepare_query(sql: str) -> PreparedQuery:
    """Check ``sql``, resolve (and if need be fetch) the tables it reads, and lock DuckDB down."""
    started = time.perf_counter()
    runtime = get_runtime()
    con = open_connection()
    try:
        files = current_files(runtime, referenced_tables(con, sql))
        expose_tables(con, files, runtime.storage)
    except BaseException:
        con.close()
        raise
    return PreparedQuery(sql, con, files, started)


def run_query(sql: str, *, row_limit: int | None = None) -> QueryResult:
    """Run one read-only query; at most ``row_limit`` rows (default: the query_row_limit setting).

    ``execution_time_ms`` covers the whole call, a lazy fetch of an uncached table included.
    """
    limit = get_runtime().settings.query_row_limit if row_limit is None else row_limit
    with prepare_query(sql) as prepared:
        return prepared.run(limit)


@contextmanager
def _sql_errors() -> Iterator[None]:
    try:
        yield
    except duckdb.PermissionException as exc:
        raise QueryRejectedError(f"the query may read only cached tables: {exc}") from exc
    except _SYSTEM_ERRORS:
        raise
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
