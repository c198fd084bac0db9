"""Results of refreshes and cleanups: the JSON answers of POST /refresh and the flow results."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


def _absent(value: object) -> bool:
    return value is None


class TableRefreshResult(BaseModel):
    connection_id: int
    schema_name: str
    table_name: str
    rows_synced: int
    duration_ms: int
    superseded: bool = Field(
        default=False,
        description="A refresh whose snapshot started later was already live: this one's file "
        "was discarded, not swapped in",
    )
    # Only for append and merge tables; a full table's result keeps exactly the fields above.
    mode: str | None = Field(
        default=None, exclude_if=_absent, description="append or merge (absent: full)"
    )
    incremental: bool | None = Field(
        default=None,
        exclude_if=_absent,
        description="Read only what changed (false: read in full, see reason)",
    )
    reason: str | None = Field(
        default=None, exclude_if=_absent, description="Why the read was full or incremental"
    )
    files: int | None = Field(
        default=None, exclude_if=_absent, description="Files of the table's snapshot after it"
    )
    compacted: bool | None = Field(
        default=None,
        exclude_if=_absent,
        description="The snapshot was compacted into one file afterwards",
    )


class TableRefreshError(BaseModel):
    schema_name: str
    table_name: str
    error: str


class ConnectionRefreshResult(BaseModel):
    connection_id: int
    tables_refreshed: int
    tables_failed: int
    total_rows: int
    duration_ms: int
    errors: list[TableRefreshError]
    tables_superseded: int = Field(
        default=0,
        description="Refreshed tables whose file was discarded: a newer snapshot was already live",
    )


class SchemaTable(BaseModel):
    schema_name: str
    table_name: str


class ModifiedTable(SchemaTable):
    columns_added: list[str]
    columns_removed: list[str]
    columns_changed: list[str]


class ConnectionSchemaChanges(BaseModel):
    """What one connection's schema refresh found."""

    connection_id: int
    tables_discovered: int
    added: list[SchemaTable] = Field(default_factory=list)
    removed: list[SchemaTable] = Field(default_factory=list)
    modified: list[ModifiedTable] = Field(default_factory=list)


class ConnectionFailure(BaseModel):
    """A connection whose schema refresh failed, and why."""

    connection_id: int
    error: str


class SchemaRefreshResult(BaseModel):
    connections_refreshed: int
    tables_discovered: int
    tables_added: int
    tables_removed: int
    tables_modified: int
    connections_failed: int = 0
    errors: list[ConnectionFailure] = Field(default_factory=list)
    dry_run: bool = False
    changes: list[ConnectionSchemaChanges] = Field(default_factory=list)

    @classmethod
    def combine(
        cls, changes: list[ConnectionSchemaChanges], errors: list[ConnectionFailure], dry_run: bool
    ) -> SchemaRefreshResult:
        return cls(
            connections_refreshed=len(changes),
            tables_discovered=sum(c.tables_discovered for c in changes),
            tables_added=sum(len(c.added) for c in changes),
            tables_removed=sum(len(c.removed) for c in changes),
            tables_modified=sum(len(c.modified) for c in changes),
            connections_failed=len(errors),
            errors=errors,
            dry_run=dry_run,
            changes=changes,
        )


class DeletionFailure(BaseModel):
    path: str
    attempts: int
    error: str


class CleanupResult(BaseModel):
    deleted: list[str] = Field(default_factory=list)
    released: list[str] = Field(default_factory=list)
    failed: list[DeletionFailure] = Field(default_factory=list)
    orphans_scheduled: list[str] = Field(default_factory=list)
    temporaries_removed: list[str] = Field(
        default_factory=list,
        description="Files abandoned while being written (their writer is gone), removed",
    )


class OrphanSweep(BaseModel):
    scheduled: list[str] = Field(default_factory=list)
    temporaries_removed: list[str] = Field(default_factory=list)


class FreshnessOutcome(BaseModel):
    """One table with a target, as a freshness run saw it."""

    connection_id: int
    schema_name: str
    table_name: str
    age_seconds: float | None = Field(
        description="Its age when the run started (null: never synced)"
    )
    target_seconds: float
    refreshed: bool
    status: str = Field(description="refreshed, superseded, failed or skipped")
    reason: str = Field(description="Why it was refreshed or not (or the error)")
    rows_synced: int = 0


class FreshnessResult(BaseModel):
    tables_with_target: int
    tables_refreshed: int
    tables_failed: int
    duration_ms: int
    next_run_at: datetime | None = Field(
        description="When the soonest target falls due (null: no table has a target)"
    )
    tables: list[FreshnessOutcome]
