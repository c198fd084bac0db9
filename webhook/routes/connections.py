"""Registering, changing, listing and deleting connections, and listing their tables."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from catalog import ConnectionRecord, TableRecord
from core.connections import (
    discover_tables,
    register_connection,
    remove_connection,
    update_connection,
)
from core.freshness import TableStatus, table_statuses
from orchestration.scheduling import arm_pending_cleanups
from orchestration.secrets import externalize_password, resolve_password
from runtime.container import Runtime
from sources import schema_from_json
from webhook.body import require_json_body
from webhook.models import (
    ColumnInfo,
    ConnectionCreate,
    ConnectionCreated,
    ConnectionDeleted,
    ConnectionInfo,
    ConnectionUpdate,
    ConnectionUpdated,
    TableInfo,
)
from webhook.state import AppRuntime

router = APIRouter(tags=["connections"])
log = logging.getLogger("freshcache.webhook")


@router.post(
    "/connections",
    status_code=201,
    response_model=ConnectionCreated,
    dependencies=[Depends(require_json_body)],
)
def create_connection(body: ConnectionCreate, runtime: AppRuntime) -> ConnectionCreated:
    """Register a connection and discover its tables (unless `discover` is false).

    A connection whose discovery fails is registered all the same (`discovery_status`
    "failed", with the cause): fix its config with PATCH /connections/{id}.
    """
    record = register_connection(
        runtime.catalog, externalize_password, body.name, body.source_type, body.config
    )
    if not body.discover:
        return ConnectionCreated(
            id=record.id,
            name=record.name,
            source_type=record.source_type,
            tables_discovered=0,
            discovery_status="skipped",
            discovery_error=None,
        )
    return _discovered(runtime, record)  # response_model leaves out what PATCH adds


@router.patch(
    "/connections/{connection_id}",
    response_model=ConnectionUpdated,
    dependencies=[Depends(require_json_body)],
)
def patch_connection(
    connection_id: int, body: ConnectionUpdate, runtime: AppRuntime
) -> ConnectionUpdated:
    """Rename a connection or change its config, validated as a registration is, then
    re-discover its tables: tables gone from the source or out of its `include`/`exclude`
    patterns are removed and their cache files deleted after the grace period."""
    record = update_connection(
        runtime.catalog, externalize_password, connection_id, name=body.name, config=body.config
    )
    discovered = _discovered(runtime, record)
    if discovered.tables_removed:
        arm_pending_cleanups(runtime)
    return discovered


def _discovered(runtime: Runtime, record: ConnectionRecord) -> ConnectionUpdated:
    """Discover the connection's tables; a failure is logged in one line and answered."""
    discovery = discover_tables(runtime, resolve_password, record.id)
    if discovery.error is not None:
        log.warning(
            "discovering the tables of connection %d failed: %s", record.id, discovery.error_line
        )
    changes = discovery.changes
    return ConnectionUpdated(
        id=record.id,
        name=record.name,
        source_type=record.source_type,
        tables_discovered=changes.tables_discovered if changes else 0,
        discovery_status=discovery.status,
        discovery_error=discovery.error,
        tables_added=len(changes.added) if changes else 0,
        tables_removed=len(changes.removed) if changes else 0,
        tables_modified=len(changes.modified) if changes else 0,
    )


@router.get("/connections", response_model=list[ConnectionInfo])
def list_connections(runtime: AppRuntime) -> list[ConnectionInfo]:
    catalog = runtime.catalog
    tables = catalog.list_tables()
    return [
        _info(c, [t for t in tables if t.connection_id == c.id]) for c in catalog.list_connections()
    ]


@router.get("/connections/{connection_id}", response_model=ConnectionInfo)
def get_connection(connection_id: int, runtime: AppRuntime) -> ConnectionInfo:
    catalog = runtime.catalog
    return _info(catalog.get_connection(connection_id), catalog.list_tables(connection_id))


@router.delete("/connections/{connection_id}", response_model=ConnectionDeleted)
async def delete_connection(connection_id: int, runtime: AppRuntime) -> ConnectionDeleted:
    """Delete a connection; its cache files are deleted after the grace period."""
    paths = await run_in_threadpool(remove_connection, runtime, connection_id)
    await run_in_threadpool(arm_pending_cleanups, runtime)
    return ConnectionDeleted(id=connection_id, deleted=True, files_scheduled=len(paths))


# Unset: a policy shows the fields it sets, not every field as null.
@router.get(
    "/connections/{connection_id}/tables",
    response_model=list[TableInfo],
    response_model_exclude_unset=True,
)
def list_tables(connection_id: int, runtime: AppRuntime) -> list[TableInfo]:
    """Every table with its columns, policy, age against its target and cached files."""
    catalog = runtime.catalog
    catalog.get_connection(connection_id)
    return [_table_info(s) for s in table_statuses(catalog, catalog.clock(), connection_id)]


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


def _table_info(status: TableStatus) -> TableInfo:
    table = status.snapshot.table
    schema = schema_from_json(table.arrow_schema_json)
    mark = status.high_water_mark
    return TableInfo(
        schema_name=table.schema_name,
        table_name=table.table_name,
        columns=[ColumnInfo(name=f.name, type=str(f.type), nullable=f.nullable) for f in schema],
        synced=table.parquet_path is not None,
        last_sync=table.last_sync,
        age_seconds=status.age_seconds,
        fresh=status.fresh,
        mode=status.mode,
        max_staleness_seconds=status.policy.max_staleness_seconds,
        policy=status.policy,
        high_water_mark=mark if mark is None or isinstance(mark, int) else str(mark),
        file_count=len(status.snapshot.files),
    )
