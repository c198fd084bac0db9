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
    # When the live file's fetch began reading the source; an older snapshot is never swapped in.
    snapshot_started_at: datetime | None = None


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
    """Outcome of swapping a new cache file in: the path it replaced, if any.

    `superseded`: a newer snapshot was already live, so the new file was queued, not swapped in.
    """

    table: TableRecord
    replaced_path: str | None
    superseded: bool = False


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


@dataclass(frozen=True)
class Increments:
    """How an incremental table's live snapshot was read (catalog.schema.table_increments)."""

    mode: str
    cursor_column: str
    primary_key: tuple[str, ...]
    high_water_mark: str | None
    full_started_at: datetime
    schema_changed: bool = False


@dataclass(frozen=True)
class Snapshot:
    """A table with the files its data is read from now: the base, then the deltas in order."""

    table: TableRecord
    deltas: tuple[str, ...] = ()
    increments: Increments | None = None

    @property
    def files(self) -> tuple[str, ...]:
        base = self.table.parquet_path
        return () if base is None else (base, *self.deltas)

    @property
    def merge_key(self) -> tuple[str, ...]:
        """The key of a merge table, whose rows are the latest of each key (else empty)."""
        if self.increments is None or self.increments.mode != "merge":
            return ()
        return self.increments.primary_key
