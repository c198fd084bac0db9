"""Schema refresh of one connection or of all of them."""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped

from core.results import ConnectionFailure, ConnectionSchemaChanges, SchemaRefreshResult
from flows.artifacts import publish_schema_refresh
from flows.failures import failing_with_the_cause
from flows.outcomes import describe, outcome
from flows.parameters import OptionalInt
from runtime.container import Runtime, entry_runtime
from tasks.schema import refresh_schema_task


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    scope = f"conn={params['connection_id']}" if params.get("connection_id") is not None else "all"
    return f"refresh-schema {scope}{' dry-run' if params.get('dry_run') else ''}"


@flow(name="refresh-schema", flow_run_name=_run_name)
@failing_with_the_cause
def refresh_schema(connection_id: OptionalInt = None, dry_run: bool = False) -> dict[str, Any]:
    """Re-discover tables; one connection's failure fails a single-connection run only.

    Args:
        connection_id: The connection whose tables to re-discover; empty: every connection.
        dry_run: Report what would change, and change nothing.
    """
    return refresh_schemas(entry_runtime(), connection_id, dry_run)


def refresh_schemas(
    runtime: Runtime, connection_id: int | None = None, dry_run: bool = False
) -> dict[str, Any]:
    """Re-discover one connection or all, in the current flow run: a task run per connection."""
    catalog = runtime.catalog
    if connection_id is not None:
        ids = [catalog.get_connection(connection_id).id]
    else:
        ids = [c.id for c in catalog.list_connections()]
    futures = refresh_schema_task.map(ids, dry_run=unmapped(dry_run))
    changes: list[ConnectionSchemaChanges] = []
    errors: list[ConnectionFailure] = []
    for cid, future in zip(ids, futures, strict=True):
        result = outcome(future)
        if isinstance(result, BaseException):
            if connection_id is not None:
                raise result
            errors.append(ConnectionFailure(connection_id=cid, error=describe(result)))
        else:
            changes.append(result)
    summary = SchemaRefreshResult.combine(changes, errors, dry_run)
    publish_schema_refresh(summary)
    return summary.model_dump()
