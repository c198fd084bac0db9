"""Request and response bodies of the HTTP API (the refresh results live in tasks.results)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


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


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1)


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
    catalog: str
    prefect: str
