"""The `refresh-schema` task: one connection's schema refresh (core/schema_sync.py), with its
password from its Prefect Secret block."""

from __future__ import annotations

from prefect import task

from core.access import source_access
from core.results import ConnectionSchemaChanges
from core.schema_sync import sync_connection_schema
from orchestration.scheduling import arm_pending_cleanups
from orchestration.secrets import resolve_password
from runtime.container import Runtime, entry_runtime


def refresh_connection_schema(
    runtime: Runtime, connection_id: int, dry_run: bool = False
) -> ConnectionSchemaChanges:
    """`sync_connection_schema` with the connection's password resolved (a Prefect Secret block
    or an environment variable)."""
    access = source_access(runtime.catalog.get_connection(connection_id), resolve_password)
    return sync_connection_schema(runtime, access, connection_id, dry_run)


@task(
    name="refresh-schema",
    task_run_name="refresh-schema conn={connection_id}",
    persist_result=False,
)
def refresh_schema_task(connection_id: int, dry_run: bool = False) -> ConnectionSchemaChanges:
    runtime = entry_runtime()
    changes = refresh_connection_schema(runtime, connection_id, dry_run)
    arm_pending_cleanups(runtime)
    return changes
