"""Discovery and streaming reads of remote tables: DuckDB, PostgreSQL, any SQLAlchemy URL."""

from sources.api import (
    DEFAULT_BATCH_ROWS,
    discover,
    open_reader,
    primary_key,
    write_parquet,
    writes_parquet,
)
from sources.config import (
    DuckDBConfig,
    PasswordRef,
    PostgresConfig,
    SourceConfig,
    SqlAlchemyConfig,
    parse_source_config,
    plain_message,
)
from sources.cursor import CursorBound, CursorValue, is_cursor_type
from sources.driver import quote_ident
from sources.errors import (
    SourceAuthError,
    SourceConfigError,
    SourceError,
    SourceSchemaChangedError,
    SourceTableNotFoundError,
    SourceUnavailableError,
)
from sources.metadata import (
    ColumnChanges,
    TableMetadata,
    schema_diff,
    schema_from_json,
    schema_to_json,
)

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "ColumnChanges",
    "CursorBound",
    "CursorValue",
    "DuckDBConfig",
    "PasswordRef",
    "PostgresConfig",
    "SourceAuthError",
    "SourceConfig",
    "SourceConfigError",
    "SourceError",
    "SourceSchemaChangedError",
    "SourceTableNotFoundError",
    "SourceUnavailableError",
    "SqlAlchemyConfig",
    "TableMetadata",
    "discover",
    "is_cursor_type",
    "open_reader",
    "parse_source_config",
    "plain_message",
    "primary_key",
    "quote_ident",
    "schema_diff",
    "schema_from_json",
    "schema_to_json",
    "write_parquet",
    "writes_parquet",
]
