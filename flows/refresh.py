"""The dispatcher: one flow for every refresh the webhook, the UI and the CLI ask for."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.data import refresh_table_data, run_connection_data_refresh
from flows.request import RefreshKind, RefreshRequest
from flows.schema import refresh_schema


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = {k: v for k, v in flow_run.parameters.items() if v not in (None, False)}
    return "refresh " + (" ".join(f"{k}={v}" for k, v in params.items()) or "all-schemas")


def dispatch(request: RefreshRequest) -> dict[str, Any]:
    """Run the flow the request names and return its result (the JSON of POST /refresh)."""
    kind = request.kind()
    if kind is RefreshKind.DATA_TABLE:
        assert request.connection_id is not None
        assert request.schema_name is not None and request.table_name is not None
        return refresh_table_data(request.connection_id, request.schema_name, request.table_name)
    if kind is RefreshKind.DATA_CONNECTION:
        assert request.connection_id is not None
        return run_connection_data_refresh(request.connection_id, request.cached_only)
    return refresh_schema(request.connection_id, request.dry_run)


@flow(name="refresh", flow_run_name=_run_name, persist_result=True)
def refresh(
    connection_id: int | None = None,
    schema_name: str | None = None,
    table_name: str | None = None,
    data: bool = False,
    dry_run: bool = False,
    cached_only: bool = False,
) -> dict[str, Any]:
    """Refresh schemas or data, as POST /refresh describes."""
    request = RefreshRequest(
        connection_id=connection_id,
        schema_name=schema_name,
        table_name=table_name,
        data=data,
        dry_run=dry_run,
        cached_only=cached_only,
    )
    return dispatch(request)
