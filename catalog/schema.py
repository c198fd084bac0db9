"""The catalog's tables: connections, tables and pending_deletions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("catalog timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

connections = Table(
    "connections",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("source_type", String(32), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

tables = Table(
    "tables",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "connection_id",
        Integer,
        ForeignKey("connections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("schema_name", Text, nullable=False),
    Column("table_name", Text, nullable=False),
    Column("arrow_schema_json", Text, nullable=False),
    Column("parquet_path", Text, nullable=True),
    Column("last_sync", UTCDateTime, nullable=True),
    UniqueConstraint("connection_id", "schema_name", "table_name", name="uq_tables_identity"),
)
Index("ix_tables_parquet_path", tables.c.parquet_path)

pending_deletions = Table(
    "pending_deletions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False, unique=True),
    Column("delete_after", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=True),
)
Index("ix_pending_deletions_delete_after", pending_deletions.c.delete_after)
