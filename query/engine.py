"""QueryEngine: the queries of a process, each on its own cursor of one shared DuckDB database.

The database bounds what all queries use together: memory (DuckDB spills to a directory under
the data dir beyond it, and fails a query that still does not fit) and time (DuckDB stops a
query at the time limit; a query that asked for less is interrupted by a timer). A query can be
cancelled from any thread, e.g. when its client goes away.
"""

from __future__ import annotations

import os
import secrets
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from catalog import Snapshot
from query.binding import bind_tables, snapshot_expression
from query.errors import (
    QueryCancelledError,
    QueryError,
    QueryMemoryError,
    QueryRejectedError,
    QueryTimeoutError,
    UnqualifiedTableError,
)
from query.locks import KeyedLocks
from query.names import TableName
from query.parsing import parse_query
from query.resolve import FetchLocks, FetchTable, current_files
from query.sandbox import DatabaseLimits, open_database, open_parser
from runtime.container import Runtime

# Failures of the system rather than of the SQL: they stay what they are (HTTP 500).
_SYSTEM_ERRORS = (
    duckdb.IOException,
    duckdb.HTTPException,
    duckdb.InternalException,
    duckdb.FatalException,
)
# An Arrow reader reports DuckDB's errors as OSError: its message starts with DuckDB's type.
_ARROW_ERRORS: dict[str, type[duckdb.Error]] = {
    "INTERRUPT Error": duckdb.InterruptException,
    "Out of Memory Error": duckdb.OutOfMemoryException,
    "Permission Error": duckdb.PermissionException,
    "IO Error": duckdb.IOException,
    "HTTP Error": duckdb.HTTPException,
    "INTERNAL Error": duckdb.InternalException,
}


@dataclass(frozen=True)
class Limits:
    """What one response may hold."""

    rows: int
    bytes: int


class QueryEngine:
    def __init__(self, runtime: Runtime, fetch: FetchTable) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.fetch = fetch
        self.fetch_locks: FetchLocks = KeyedLocks()
        self.timeout_seconds = settings.query_timeout_seconds
        self.memory_mb = settings.query_memory_mb
        self.spill_mb = settings.query_spill_mb
        self.limits = Limits(settings.query_row_limit, settings.query_byte_limit)
        self.spill_directory = _spill_directory(settings.data_dir.resolve())
        self.parser = open_parser()
        try:
            self.database = open_database(
                DatabaseLimits(
                    memory_mb=settings.query_memory_mb,
                    spill_mb=settings.query_spill_mb,
                    timeout_seconds=settings.query_timeout_seconds,
                    spill_directory=self.spill_directory,
                ),
                runtime.storage,
            )
        except BaseException:
            self.parser.close()
            shutil.rmtree(self.spill_directory, ignore_errors=True)
            raise
        self._lock = threading.Lock()
        self._running: set[RunningQuery] = set()
        self.outcomes: Counter[str] = Counter()  # finished queries: completed, timeout, ...

    @property
    def running(self) -> int:
        """Queries started and not closed yet."""
        with self._lock:
            return len(self._running)

    def start(
        self,
        sql: str,
        *,
        timeout_seconds: float | None = None,
        max_staleness_seconds: float | None = None,
    ) -> RunningQuery:
        """Check ``sql``, resolve the cache files it reads (fetching uncached tables, refreshing
        those older than ``max_staleness_seconds``) and bind them; run it with ``execute`` or
        ``execute_arrow`` of the returned query, then close it.
        """
        if timeout_seconds is not None and timeout_seconds > self.timeout_seconds:
            raise QueryError(
                f"timeout_seconds may be at most {self.timeout_seconds:g}, the server's time "
                "limit (FRESHCACHE_QUERY_TIMEOUT_SECONDS)"
            )
        with self._lock:
            query = RunningQuery(self, self.database.cursor(), timeout_seconds)
            self._running.add(query)
        try:
            query.prepare(sql, max_staleness_seconds)
        except BaseException:
            query.close()
            raise
        return query

    @contextmanager
    def parser_cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._lock:
            cursor = self.parser.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def _finished(self, query: RunningQuery) -> None:
        with self._lock:
            self._running.discard(query)
            self.outcomes[query.outcome] += 1

    def close(self) -> None:
        with self._lock:
            running = list(self._running)
        for query in running:
            query.cancel()
        self.database.close()
        self.parser.close()
        shutil.rmtree(self.spill_directory, ignore_errors=True)

    def __enter__(self) -> QueryEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class RunningQuery:
    """One query on its own cursor; ``cancel`` may be called from any thread."""

    def __init__(
        self, engine: QueryEngine, cursor: duckdb.DuckDBPyConnection, timeout: float | None
    ) -> None:
        self.started = time.perf_counter()
        self.timeout_seconds = engine.timeout_seconds if timeout is None else timeout
        self.files: dict[TableName, Snapshot] = {}
        self.outcome = "completed"
        self._engine = engine
        self._cursor = cursor
        self._sql = ""
        self._guard = threading.Lock()
        self._closed = False
        self._stopped_by: str | None = None
        self._timer: threading.Timer | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)

    def prepare(self, sql: str, max_staleness_seconds: float | None = None) -> None:
        runtime = self._engine.runtime
        with self._errors():
            try:
                with self._engine.parser_cursor() as parser:
                    parsed = parse_query(parser, sql)
            except UnqualifiedTableError as exc:
                raise exc.with_example_from(self._cached_tables()) from None
            self.files = current_files(
                runtime,
                parsed.tables,
                self._engine.fetch,
                self._engine.fetch_locks,
                max_staleness_seconds,
            )
            storage = runtime.storage
            tables = {
                name: snapshot_expression(
                    [storage.duckdb_path(path) for path in snapshot.files], snapshot.merge_key
                )
                for name, snapshot in self.files.items()
            }
            self._sql = bind_tables(parsed, tables)

    def execute(self) -> list[tuple[str, str]]:
        """Run the query for ``fetch_rows``; returns the columns' names and DuckDB types."""
        with self._errors():
            self._arm()
            self._cursor.execute(self._sql)
            return [(column[0], str(column[1])) for column in self._cursor.description or []]

    def fetch_rows(self, count: int) -> list[tuple[Any, ...]]:
        with self._errors():
            return self._cursor.fetchmany(count)

    def execute_arrow(self, batch_size: int) -> pa.RecordBatchReader:
        """Run the query and read it as Arrow record batches of about ``batch_size`` rows."""
        with self._errors():
            self._arm()
            reader = self._cursor.sql(self._sql).to_arrow_reader(batch_size)
        return pa.RecordBatchReader.from_batches(reader.schema, self._batches(reader))

    def _batches(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        while True:
            with self._errors(), _arrow_errors():
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
            yield batch

    def cancel(self) -> None:
        self._stop("cancelled")

    def _stop(self, reason: str) -> None:
        with self._guard:
            if not self._closed:
                self._stopped_by = self._stopped_by or reason
                self._cursor.interrupt()

    def _arm(self) -> None:
        """A timer for a limit below DuckDB's own, which stops every query at the server's."""
        if self._stopped_by is not None:
            raise duckdb.InterruptException(f"stopped: {self._stopped_by}")
        if self.timeout_seconds < self._engine.timeout_seconds:
            self._timer = threading.Timer(self.timeout_seconds, self._stop, ["timeout"])
            self._timer.daemon = True
            self._timer.start()

    def close(self) -> None:
        with self._guard:  # no interrupt once this is set; closing may take a moment
            if self._closed:
                return
            self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._cursor.close()
        self._engine._finished(self)

    def __enter__(self) -> RunningQuery:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """DuckDB's errors as the query's: SQL errors, limits, and the system's own failures."""
        try:
            yield
        except duckdb.InterruptException as exc:
            if self._stopped_by == "cancelled":
                self.outcome = "cancelled"
                raise QueryCancelledError("the query was cancelled") from exc
            self.outcome = "timeout"
            raise QueryTimeoutError(self.timeout_seconds) from exc
        except duckdb.OutOfMemoryException as exc:
            self.outcome = "memory"
            detail = str(exc).split("\n")[0].removeprefix("Out of Memory Error: ")
            engine = self._engine
            raise QueryMemoryError(engine.memory_mb, engine.spill_mb, detail) from exc
        except duckdb.PermissionException as exc:
            self.outcome = "failed"
            message = self._clean(str(exc))
            raise QueryRejectedError(f"the query may read only cached tables: {message}") from exc
        except _SYSTEM_ERRORS as exc:
            self.outcome = "failed"
            raise type(exc)(self._clean(str(exc))) from exc
        except duckdb.Error as exc:
            self.outcome = "failed"
            raise QueryError(self._clean(str(exc))) from exc
        except BaseException:
            self.outcome = "failed"
            raise

    def _cached_tables(self) -> list[TableName]:
        catalog = self._engine.runtime.catalog
        names = {c.id: c.name for c in catalog.list_connections()}
        return [
            TableName(names[t.connection_id], t.schema_name, t.table_name)
            for t in catalog.list_tables()
            if t.connection_id in names  # a connection deleted between the two reads
        ]

    def _clean(self, message: str) -> str:
        """DuckDB names a cache file by its path: name the table instead.

        When the query reads cached tables, DuckDB's excerpt of the failing statement is left
        out: it shows the rewritten query, with paths, not what the user wrote.
        """
        if self.files:
            message = message.split("\n\nLINE ")[0]
        for name, snapshot in self.files.items():
            for path in snapshot.files:
                message = message.replace(path, f"<the cache file of {name.sql}>")
        storage = self._engine.runtime.storage
        message = message.replace(str(self._engine.spill_directory), "<the spill directory>")
        return message.replace(storage.root, "<the cache>")


def _spill_directory(data_dir: Path) -> Path:
    """A directory of this engine's own for DuckDB to spill to; DuckDB creates it when it first
    spills. Those of processes that are gone (killed, so they could not remove theirs) go."""
    data_dir.mkdir(parents=True, exist_ok=True)
    for stale in data_dir.glob(f"{_SPILL_PREFIX}*"):
        pid = stale.name.removeprefix(_SPILL_PREFIX).partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    return data_dir / f"{_SPILL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"


_SPILL_PREFIX = "query-spill-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


@contextmanager
def _arrow_errors() -> Iterator[None]:
    try:
        yield
    except (OSError, pa.ArrowException) as exc:
        kind = str(exc).partition(":")[0]
        raise _ARROW_ERRORS.get(kind, duckdb.Error)(str(exc)) from exc
