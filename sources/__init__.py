"""Discovery and streaming reads of remote tables: DuckDB, PostgreSQL, any SQLAlchemy URL."""

from sources.api import DEFAULT_BATCH_ROWS, discover, open_reader
from sources.config import (
    DuckDBConfig,
    PasswordRef,
    PostgresConfig,
    SourceConfig,
    SqlAlchemyConfig,
    parse_source_config,
)
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
    "open_reader",
    "parse_source_config",
    "schema_diff",
    "schema_from_json",
    "schema_to_json",
]
