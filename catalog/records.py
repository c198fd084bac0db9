"""Plain records the catalog hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ConnectionRecord:
    id: int
    name: str
    source_type: str
    config: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class TableRecord:
    id: int
    connection_id: int
    schema_name: str
    table_name: str
    arrow_schema_json: str
    parquet_path: str | None
    last_sync: datetime | None


@dataclass(frozen=True)
class DiscoveredTable:
    """A table as a source reports it: identity plus canonical Arrow schema."""

    schema_name: str
    table_name: str
    arrow_schema_json: str


@dataclass(frozen=True)
class PendingDeletion:
    id: int
    path: str
    delete_after: datetime
    attempts: int
    last_error: str | None


@dataclass(frozen=True)
class SwapResult:
    """Outcome of swapping a new cache file in: the path it replaced, if any."""

    table: TableRecord
    replaced_path: str | None


@dataclass(frozen=True)
class TableSync:
    """What applying a discovery changed (or would change, in a dry run)."""

    added: list[DiscoveredTable]
    removed: list[TableRecord]
    modified: list[tuple[TableRecord, DiscoveredTable]]
    unchanged: int

    @property
    def discovered(self) -> int:
        return len(self.added) + len(self.modified) + self.unchanged
