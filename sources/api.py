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
from sources.errors import (
    SourceError,
    SourceSchemaChangedError,
    SourceTableNotFoundError,
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
    def __call__(self) -> Iterator[None]:
        try:
            yield
        except SourceError:
            raise
        except Exception as exc:
            cause = redact(f"{type(exc).__name__}: {exc}".strip(), self.password)
            raise self.classify(exc)(self.connection_name, cause) from None

    def iterate(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        with self():
            yield from batches


def discover(
    config: SourceConfig, password: str | None, *, connection_name: str
) -> list[TableMetadata]:
    """Every table and view of the source with its Arrow schema, in a bounded number of queries."""
    driver = _DRIVERS[type(config)]
    with _Guard(connection_name, password, driver.classify)():
        return driver.discover(config, password)


@contextmanager
def open_reader(
    config: SourceConfig,
    password: str | None,
    table: TableMetadata,
    *,
    connection_name: str,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Iterator[pa.RecordBatchReader]:
    """Stream `table` as batches of exactly `table.arrow_schema`; closes the source on exit."""
    driver = _DRIVERS[type(config)]
    guard = _Guard(connection_name, password, driver.classify)
    with ExitStack() as stack:
        with guard():
            stream = stack.enter_context(driver.open_stream(config, password, table, batch_rows))
            _check_unchanged(table, stream.current_schema, connection_name)
            batches = conform(stream.batches(), table.arrow_schema)
        yield pa.RecordBatchReader.from_batches(table.arrow_schema, guard.iterate(batches))


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
