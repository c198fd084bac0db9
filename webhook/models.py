"""Request and response bodies of the HTTP API (the refresh results live in core.results)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.policy import MAX_SECONDS, RefreshMode, RefreshPolicy


class ErrorResponse(BaseModel):
    error: str


class ConnectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="1-63 letters, digits, '_' or '-'; unique")
    source_type: Literal["duckdb", "postgres", "sqlalchemy"]
    config: dict[str, Any] = Field(
        description="The source's settings; a literal `password` is stored as a Prefect Secret"
    )
    discover: bool = True


class ConnectionCreated(BaseModel):
    id: int
    name: str
    source_type: str
    tables_discovered: int
    discovery_status: Literal["success", "skipped", "failed"]
    discovery_error: str | None


class ConnectionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="A new name (1-63 letters, digits, _, -)")
    config: dict[str, Any] | None = Field(
        default=None,
        description="Config keys to change: each replaces the stored one, null removes it "
        "(a literal `password` is stored as a Prefect Secret, or give a reference)",
    )

    @model_validator(mode="after")
    def _changes_something(self) -> ConnectionUpdate:
        if self.name is None and self.config is None:
            raise ValueError("give a new name, config keys to change, or both")
        return self


class ConnectionUpdated(ConnectionCreated):
    tables_added: int = 0
    tables_removed: int = Field(
        default=0,
        description="Tables gone from the source or out of the connection's scope: removed, "
        "their cache files deleted after the grace period",
    )
    tables_modified: int = 0


class ConnectionInfo(BaseModel):
    id: int
    name: str
    source_type: str
    config: dict[str, Any]
    created_at: datetime
    table_count: int
    cached_table_count: int


class ConnectionDeleted(BaseModel):
    id: int
    deleted: bool
    files_scheduled: int


class ColumnInfo(BaseModel):
    name: str
    type: str
    nullable: bool


class TableInfo(BaseModel):
    schema_name: str
    table_name: str
    columns: list[ColumnInfo]
    synced: bool
    last_sync: datetime | None
    age_seconds: float | None = Field(description="Seconds since last_sync (null: never synced)")
    fresh: bool | None = Field(
        description="Within its max_staleness_seconds (null: the table has no target)"
    )
    mode: RefreshMode = Field(description="How a data refresh reads it: full, append or merge")
    max_staleness_seconds: float | None = Field(description="Its target age (null: none)")
    policy: RefreshPolicy = Field(
        description="Its policy: the table's own fields over the connection's default"
    )
    high_water_mark: int | str | None = Field(
        description="append/merge: the greatest cursor value cached (dates, times and "
        "decimals as text)"
    )
    file_count: int = Field(description="Files its cached snapshot is read from")


class ResolvedPolicy(BaseModel):
    """The policy a table refreshes by, every field decided."""

    mode: RefreshMode
    max_staleness_seconds: float | None
    cursor_column: str | None
    primary_key: list[str]
    lookback_seconds: float
    full_refresh_every_seconds: float | None


class ConnectionPolicy(BaseModel):
    connection_id: int
    policy: RefreshPolicy = Field(description="The connection's default, as set")


class TablePolicyInfo(BaseModel):
    connection_id: int
    schema_name: str
    table_name: str
    policy: RefreshPolicy = Field(description="The table's own fields, as set")
    effective: ResolvedPolicy = Field(description="What the table now refreshes by")


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1)
    timeout_seconds: float | None = Field(
        None,
        gt=0,
        description="A time limit below the server's (FRESHCACHE_QUERY_TIMEOUT_SECONDS)",
    )
    max_staleness_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_SECONDS,
        description="Tables last synced longer ago than this are refreshed (by their policy) "
        "before the query reads them",
    )


class RefreshAccepted(BaseModel):
    flow_run_id: str
    state: str
    status_url: str


class RefreshRunStatus(BaseModel):
    flow_run_id: str
    state: str
    finished: bool
    result: dict[str, Any] | None = None
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    catalog: str = Field(description="ok, or why the catalog database does not answer")
    prefect: str = Field(description="ok, or why the Prefect API does not answer (and where)")
    scheduler: str = Field(
        description="ok, or which schedule has no runs or whose runs nobody picks up"
    )
