"""Results of refreshes and cleanups: the JSON shapes of DESIGN.md section 5."""

from __future__ import annotations

from pydantic import BaseModel, Field


class TableRefreshResult(BaseModel):
    connection_id: int
    schema_name: str
    table_name: str
    rows_synced: int
    duration_ms: int


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


class TableName(BaseModel):
    schema_name: str
    table_name: str


class ModifiedTable(TableName):
    columns_added: list[str]
    columns_removed: list[str]
    columns_changed: list[str]


class ConnectionSchemaChanges(BaseModel):
    """What one connection's schema refresh found."""

    connection_id: int
    tables_discovered: int
    added: list[TableName] = Field(default_factory=list)
    removed: list[TableName] = Field(default_factory=list)
    modified: list[ModifiedTable] = Field(default_factory=list)


class ConnectionError(BaseModel):
    connection_id: int
    error: str


class SchemaRefreshResult(BaseModel):
    connections_refreshed: int
    tables_discovered: int
    tables_added: int
    tables_removed: int
    tables_modified: int
    connections_failed: int = 0
    errors: list[ConnectionError] = Field(default_factory=list)
    dry_run: bool = False
    changes: list[ConnectionSchemaChanges] = Field(default_factory=list)

    @classmethod
    def combine(
        cls, changes: list[ConnectionSchemaChanges], errors: list[ConnectionError], dry_run: bool
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
