"""Registering, listing and deleting connections, and listing their tables."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from catalog import ConnectionRecord, TableRecord
from flows.schema import refresh_schema
from runtime.container import get_runtime
from sources import schema_from_json
from tasks.connections import register_connection, remove_connection
from webhook.errors import message_for
from webhook.models import (
    ColumnInfo,
    ConnectionCreate,
    ConnectionCreated,
    ConnectionDeleted,
    ConnectionInfo,
    TableInfo,
)

router = APIRouter(tags=["connections"])


@router.post("/connections", status_code=201, response_model=ConnectionCreated)
def create_connection(body: ConnectionCreate) -> ConnectionCreated:
    """Register a connection and discover its tables (unless `discover` is false)."""
    record = register_connection(body.name, body.source_type, body.config)
    created = ConnectionCreated(
        id=record.id,
        name=record.name,
        source_type=record.source_type,
        tables_discovered=0,
        discovery_status="skipped",
        discovery_error=None,
    )
    if not body.discover:
        return created
    try:
        result = refresh_schema(record.id)
    except Exception as exc:
        created.discovery_status, created.discovery_error = "failed", message_for(exc)
    else:
        created.discovery_status, created.tables_discovered = "success", result["tables_discovered"]
    return created


@router.get("/connections", response_model=list[ConnectionInfo])
def list_connections() -> list[ConnectionInfo]:
    catalog = get_runtime().catalog
    tables = catalog.list_tables()
    return [
        _info(c, [t for t in tables if t.connection_id == c.id]) for c in catalog.list_connections()
    ]


@router.get("/connections/{connection_id}", response_model=ConnectionInfo)
def get_connection(connection_id: int) -> ConnectionInfo:
    catalog = get_runtime().catalog
    return _info(catalog.get_connection(connection_id), catalog.list_tables(connection_id))


@router.delete("/connections/{connection_id}", response_model=ConnectionDeleted)
async def delete_connection(connection_id: int) -> ConnectionDeleted:
    """Delete a connection; its cache files are deleted after the grace period."""
    paths = await run_in_threadpool(remove_connection, connection_id)
    return ConnectionDeleted(id=connection_id, deleted=True, files_scheduled=len(paths))


@router.get("/connections/{connection_id}/tables", response_model=list[TableInfo])
def list_tables(connection_id: int) -> list[TableInfo]:
    catalog = get_runtime().catalog
    catalog.get_connection(connection_id)
    return [_table_info(t) for t in catalog.list_tables(connection_id)]


def _info(connection: ConnectionRecord, tables: list[TableRecord]) -> ConnectionInfo:
    return ConnectionInfo(
        id=connection.id,
        name=connection.name,
        source_type=connection.source_type,
        config=connection.config,
        created_at=connection.created_at,
        table_count=len(tables),
        cached_table_count=sum(1 for t in tables if t.parquet_path is not None),
    )


def _table_info(table: TableRecord) -> TableInfo:
    schema = schema_from_json(table.arrow_schema_json)
    return TableInfo(
        schema_name=table.schema_name,
        table_name=table.table_name,
        columns=[ColumnInfo(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema],
        synced=table.parquet_path is not None,
        last_sync=table.last_sync,
    )
