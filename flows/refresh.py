"""The dispatcher: one flow for every refresh the webhook, the UI and the CLI ask for."""

from __future__ import annotations

from pathlib import Path
from tempfile import gettempdir
from typing import Any

from prefect import flow

from flows.data import refresh_all_tables, refresh_one_table
from flows.failures import failing_with_the_cause
from flows.inline import without_heartbeats
from flows.parameters import OptionalInt, OptionalStr
from flows.request import RefreshKind, RefreshRequest
from flows.schema import refresh_schemas
from runtime.container import Runtime, entry_runtime, runtime_scope


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = {k: v for k, v in flow_run.parameters.items() if v not in (None, False)}
    return "refresh " + (" ".join(f"{k}={v}" for k, v in params.items()) or "all-schemas")


def dispatch(runtime: Runtime, request: RefreshRequest) -> dict[str, Any]:
    """Run the refresh the request names and return its result (the JSON of POST /refresh).

    Its task runs belong to the current flow run: a nested flow run would cost its own start,
    heartbeat and end for nothing the UI does not show already.
    """
    kind = request.kind()
    if kind is RefreshKind.DATA_TABLE:
        assert request.connection_id is not None
        assert request.schema_name is not None and request.table_name is not None
        return refresh_one_table(
            runtime, request.connection_id, request.schema_name, request.table_name, request.full
        )
    if kind is RefreshKind.DATA_CONNECTION:
        assert request.connection_id is not None
        return refresh_all_tables(runtime, request.connection_id, request.cached_only, request.full)
    return refresh_schemas(runtime, request.connection_id, request.dry_run)


@flow(name="refresh", flow_run_name=_run_name, persist_result=True)
@failing_with_the_cause
def refresh(
    connection_id: OptionalInt = None,
    schema_name: OptionalStr = None,
    table_name: OptionalStr = None,
    data: bool = False,
    dry_run: bool = False,
    cached_only: bool = False,
    full: bool = False,
) -> dict[str, Any]:
    """Refresh schemas or data, as POST /refresh describes.

    Args:
        connection_id: The connection to refresh (none: the schemas of every connection).
        schema_name: With table_name, the one table to refresh.
        table_name: The table to refresh (needs schema_name and data).
        data: Refresh data (by each table's policy) rather than schemas.
        dry_run: Schema refresh only: report what would change, change nothing.
        cached_only: Connection data refresh only: only the tables already cached.
        full: Data refresh only: read append and merge tables in full too.
    """
    request = RefreshRequest.checked(
        connection_id=connection_id,
        schema_name=schema_name,
        table_name=table_name,
        data=data,
        dry_run=dry_run,
        cached_only=cached_only,
        full=full,
    )
    return dispatch(entry_runtime(), request)


# A run in this process hands its result back here: nothing to persist (no result file per
# run). The result storage named on the flow spares Prefect asking the server for its default
# one on every run (two API calls, ~20 ms); nothing is ever written to it.
_refresh_here = refresh.with_options(persist_result=False, result_storage=Path(gettempdir()))


def refresh_inline(runtime: Runtime, request: RefreshRequest) -> dict[str, Any]:
    """The `refresh` flow run in this process (flows/inline.py), in `runtime`."""
    with runtime_scope(runtime), without_heartbeats():
        result: dict[str, Any] = _refresh_here(**request.model_dump())
        return result
