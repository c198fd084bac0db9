"""A failed refresh says why in one line, in its state message and its logs, with no traceback;
a caller of the flow still gets the exception raised. (`prefect deployment run --watch` shows
that line: tests/test_quickstart.py.) A table refresh that completes leaves no line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import Log
from prefect.logging.handlers import APILogWorker

from catalog import TableNotFoundError
from flows.refresh import refresh
from flows.request import InvalidRefreshRequest
from tests.source_dbs import DuckDBSource, create_numbered_table
from tests.world import World, make_world


@pytest.fixture
def world(prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world("sqlite", "duckdb", tmp_path, refresh_retries=0) as w:
        create_numbered_table(w.source, "orders", 3)
        w.register()
        yield w


def run_log_records(flow_run_id: UUID) -> list[Log]:
    """The logs of a flow run and of its task runs, as the Prefect API has them."""
    APILogWorker.drain_all(timeout=30)  # logs are sent in batches: the last may still be queued
    with get_client(sync_client=True) as client:
        return client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))


def run_logs(flow_run_id: UUID) -> list[str]:
    return [log.message for log in run_log_records(flow_run_id)]


@pytest.mark.parametrize(
    ("parameters", "cause"),
    [
        ({"schema_name": "main"}, "schema_name requires connection_id"),
        (
            {"connection_id": 1, "schema_name": "main", "table_name": "nope", "data": True},
            "table 'main'.'nope' not found in connection 1",
        ),
        ({"connection_id": 7}, "connection 7 not found"),
    ],
    ids=["invalid-request", "missing-table", "missing-connection"],
)
def test_a_failed_run_says_why_in_one_line(
    world: World, parameters: dict[str, object], cause: str
) -> None:
    state = refresh(**parameters, return_state=True)  # type: ignore[arg-type]
    assert state.is_failed()
    assert state.message == cause
    assert state.state_details.flow_run_id is not None
    logs = run_logs(state.state_details.flow_run_id)
    assert cause in logs
    assert not [line for line in logs if "Traceback" in line or "\n" in line], logs


def test_a_caller_of_the_flow_still_gets_the_exception(world: World) -> None:
    with pytest.raises(InvalidRefreshRequest, match=r"^table_name requires schema_name$"):
        refresh(connection_id=1, table_name="orders", data=True)
    with pytest.raises(TableNotFoundError):
        refresh(connection_id=1, schema_name="main", table_name="nope", data=True)


def test_a_failing_source_is_one_line_in_the_task_run_and_in_the_flow_run(world: World) -> None:
    refresh(connection_id=1)
    assert isinstance(world.source, DuckDBSource)
    world.source.path.unlink()
    state = refresh(
        connection_id=1, schema_name="main", table_name="orders", data=True, return_state=True
    )
    assert state.is_failed()
    assert state.message is not None and state.message.startswith("connection 'src': ")
    assert state.state_details.flow_run_id is not None
    logs = run_logs(state.state_details.flow_run_id)
    assert state.message in logs
    assert [line for line in logs if "Task run failed" in line and "connection 'src'" in line]
    assert not [line for line in logs if "Traceback" in line or "\n" in line], logs


def test_table_refreshes_that_complete_leave_no_line_but_a_failing_one_does(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    for logger in ("prefect.flow_runs", "prefect.task_runs"):  # the tests run at WARNING
        caplog.set_level(logging.INFO, logger=logger)
    create_numbered_table(world.source, "lines", 2)
    create_numbered_table(world.source, "dropped", 2)
    refresh(connection_id=1)  # the schema: three tables
    world.source.execute(f"DROP TABLE {world.source.schema}.dropped")

    state = refresh(connection_id=1, data=True, return_state=True)

    assert state.state_details.flow_run_id is not None
    records = run_log_records(state.state_details.flow_run_id)
    task_lines = [log.message for log in records if log.task_run_id is not None]
    flow_lines = [log.message for log in records if log.task_run_id is None]
    assert not [line for line in task_lines if line.startswith("Finished in state Completed")]
    failed = [line for line in task_lines if line.startswith("Finished in state Failed")]
    assert len(failed) == 1 and "main.dropped" in failed[0], task_lines
    assert [line for line in flow_lines if line.startswith("Finished in state")], flow_lines
