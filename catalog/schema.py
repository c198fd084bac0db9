"""The catalog's tables: connections, tables and pending_deletions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    false,
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


# PostgreSQL's own default names, so that the constraints the migrations created unnamed have
# the names a later migration can refer to, on every backend.
NAMING_CONVENTION = {
    "pk": "%(table_name)s_pkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "ck": "%(table_name)s_%(constraint_name)s_check",
}
metadata = MetaData(naming_convention=NAMING_CONVENTION)

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
    Column("snapshot_started_at", UTCDateTime, nullable=True),
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

# -- incremental tables (migration 0003) -------------------------------------------------------

connection_policies = Table(
    "connection_policies",
    metadata,
    Column(
        "connection_id",
        Integer,
        ForeignKey("connections.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("policy_json", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

table_policies = Table(
    "table_policies",
    metadata,
    Column("table_id", Integer, ForeignKey("tables.id", ondelete="CASCADE"), primary_key=True),
    Column("policy_json", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# How the live snapshot of an incremental table was built: its base (tables.parquet_path) came
# from a full read that started at full_started_at; its delta files hold the rows past the
# high-water mark at their time, read by `cursor_column` in `mode` (merge: latest row per key).
table_increments = Table(
    "table_increments",
    metadata,
    Column("table_id", Integer, ForeignKey("tables.id", ondelete="CASCADE"), primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("cursor_column", Text, nullable=False),
    Column("primary_key_json", Text, nullable=False),
    Column("high_water_mark", Text, nullable=True),
    Column("full_started_at", UTCDateTime, nullable=False),
    # The source's schema changed since the base was read: the next refresh must be full.
    Column("schema_changed", Boolean, nullable=False, server_default=false()),
)

snapshot_files = Table(
    "snapshot_files",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("table_id", Integer, ForeignKey("tables.id", ondelete="CASCADE"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("path", Text, nullable=False, unique=True),
    Column("row_count", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("table_id", "seq", name="uq_snapshot_files_order"),
)
