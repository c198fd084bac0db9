"""The `refresh-table` task: one table's refresh (core/refresh.py) with what Prefect provides,
the connection's fetch slot, the password from its Secret block and a progress artifact."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from prefect import task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State

from core.access import source_access
from core.refresh import fetch_and_swap
from core.results import TableRefreshResult
from orchestration.scheduling import arm_pending_cleanups
from orchestration.secrets import resolve_password
from runtime.container import Runtime, entry_runtime, runtime_scope
from runtime.settings import Settings
from sources import SourceUnavailableError
from tasks.concurrency import connection_slot
from tasks.progress import progress_publisher
from tasks.run_logs import without_completion_lines


def refresh_table_now(
    runtime: Runtime,
    connection_id: int,
    schema_name: str,
    table_name: str,
    full: bool = False,
) -> TableRefreshResult:
    """Fetch a table into a new versioned Parquet file and make it the live one (core/refresh.py).

    The fetch holds one of the connection's slots (kept from table to table inside
    `slots_kept_by_run`) and reports its progress to the current run.
    """
    connection = runtime.catalog.get_connection(connection_id)
    limit = runtime.settings.refresh_concurrency

    def slot() -> AbstractContextManager[None]:
        return connection_slot(connection_id, limit)

    return fetch_and_swap(
        runtime,
        source_access(connection, resolve_password),
        connection_id,
        schema_name,
        table_name,
        slot=slot,
        publish=progress_publisher(),
        full=full,
    )


def is_transient_failure(_task: Any, _task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what may pass: an unreachable or dropped source, not a missing table."""
    try:
        state.result()
    except SourceUnavailableError:
        return True
    except BaseException:
        return False
    return False


TASK_NAME = "refresh-table"


@task(
    name=TASK_NAME,
    task_run_name="refresh-table conn={connection_id} {schema_name}.{table_name}",
    # Its retries come from the settings alone: every caller runs configured_refresh_table.
    retry_condition_fn=is_transient_failure,
    persist_result=False,
)
def refresh_table(
    connection_id: int,
    schema_name: str,
    table_name: str,
    full: bool = False,
) -> TableRefreshResult:
    """One table's refresh; whoever runs it schedules the cleanup of the file it replaced
    (`arm_pending_cleanups`), a run of many tables once for all."""
    without_completion_lines(TASK_NAME)
    return refresh_table_now(entry_runtime(), connection_id, schema_name, table_name, full)


def configured_refresh_table(settings: Settings) -> Any:
    """refresh_table with the retries `settings` ask for."""
    delay = settings.refresh_retry_delay_seconds
    return refresh_table.with_options(
        retries=settings.refresh_retries,
        retry_delay_seconds=[delay * 4**n for n in range(max(settings.refresh_retries, 1))],
    )


def fetch_for_query(
    runtime: Runtime, connection_id: int, schema_name: str, table_name: str
) -> None:
    """A query's lazy fetch of an uncached table: the refresh task, with its retries, run in
    `runtime` (the query's)."""
    with runtime_scope(runtime):
        configured_refresh_table(runtime.settings)(connection_id, schema_name, table_name)
    arm_pending_cleanups(runtime)
