"""The entry points: discover() and open_reader(), dispatching on the config type."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import ModuleType

import pyarrow as pa

from sources import duckdb_source, postgres, sqlalchemy_source
from sources.arrow import conform
from sources.config import DuckDBConfig, PostgresConfig, SourceConfig, SqlAlchemyConfig
from sources.cursor import CursorBound
from sources.errors import (
    SourceError,
    SourceSchemaChangedError,
    SourceTableNotFoundError,
    TargetWriteError,
    redact,
)
from sources.metadata import TableMetadata, schema_diff

DEFAULT_BATCH_ROWS = 65_536

_DRIVERS: dict[type, ModuleType] = {
    DuckDBConfig: duckdb_source,
    PostgresConfig: postgres,
    SqlAlchemyConfig: sqlalchemy_source,
}


@dataclass(frozen=True)
class _Guard:
    """Turns a driver's exceptions into typed SourceErrors with the password redacted."""

    connection_name: str
    password: str | None
    classify: Callable[[Exception], type[SourceError]]

    @contextmanager
    def __call__(self, passing: tuple[type[Exception], ...] = ()) -> Iterator[None]:
        try:
            yield
        except SourceError:
            raise
        except Exception as exc:
            if isinstance(exc, passing):
                raise
            cause = redact(f"{type(exc).__name__}: {exc}".strip(), self.password)
            raise self.classify(exc)(self.connection_name, cause) from None

    def iterate(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with self():
            yield from batches


def discover(
    config: SourceConfig, password: str | None, *, connection_name: str
) -> list[TableMetadata]:
    """Every table and view of the source in the connection's scope (its include and exclude
    patterns) with its Arrow schema, in a bounded number of queries."""
    driver = _DRIVERS[type(config)]
    with _Guard(connection_name, password, driver.classify)():
        found: list[TableMetadata] = driver.discover(config, password)
    return [t for t in found if config.covers(t.schema_name, t.table_name)]


@contextmanager
def open_reader(
    config: SourceConfig,
    password: str | None,
    table: TableMetadata,
    *,
    connection_name: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    since: CursorBound | None = None,
) -> Iterator[pa.RecordBatchReader]:
    """Stream `table` (only the rows past `since`, if given) as batches of exactly
    `table.arrow_schema`; closes the source on exit."""
    driver = _DRIVERS[type(config)]
    guard = _Guard(connection_name, password, driver.classify)
    with ExitStack() as stack:
        with guard():
            stream = stack.enter_context(
                driver.open_stream(config, password, table, batch_rows, since)
            )
            _check_unchanged(table, stream.current_schema, connection_name)
            batches = conform(stream.batches(), table.arrow_schema)
        yield pa.RecordBatchReader.from_batches(table.arrow_schema, guard.iterate(batches))


def writes_parquet(config: SourceConfig) -> bool:
    """Whether the source can write a table's Parquet file itself (write_parquet)."""
    return hasattr(_DRIVERS[type(config)], "open_copy")


def write_parquet(
    config: SourceConfig,
    password: str | None,
    table: TableMetadata,
    target: str,
    *,
    connection_name: str,
    since: CursorBound | None = None,
) -> int:
    """Write `table` (only the rows past `since`, if given) to the local Parquet file `target`
    with the source's own writer; return the rows written.

    Only for a source that `writes_parquet`. A failed write of `target` raises
    TargetWriteError (an OSError); everything else, a SourceError as open_reader's.
    """
    driver = _DRIVERS[type(config)]
    guard = _Guard(connection_name, password, driver.classify)
    with (
        guard(passing=(TargetWriteError,)),
        driver.open_copy(config, password, table, since) as copy,
    ):
        _check_unchanged(table, copy.current_schema, connection_name)
        return int(copy.write(target))


def primary_key(
    config: SourceConfig,
    password: str | None,
    schema_name: str,
    table_name: str,
    *,
    connection_name: str,
) -> list[str]:
    """The table's primary key columns in key order, as the source declares them ([]: none)."""
    driver = _DRIVERS[type(config)]
    with _Guard(connection_name, password, driver.classify)():
        return list(driver.primary_key(config, password, schema_name, table_name))


def _check_unchanged(table: TableMetadata, current: pa.Schema | None, connection_name: str) -> None:
    name = f"{table.schema_name}.{table.table_name}"
    if current is None:
        raise SourceTableNotFoundError(connection_name, f"table {name!r} does not exist")
    if not current.equals(table.arrow_schema):
        changes = schema_diff(table.arrow_schema, current)
        raise SourceSchemaChangedError(
            connection_name,
            f"table {name!r} changed since discovery (added {changes.added}, "
            f"removed {changes.removed}, changed {changes.changed}); refresh its schema",
        )
