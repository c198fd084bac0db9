"""A failed refresh says why in one line, in its state message and its logs, with no traceback;
a caller of the flow still gets the exception raised. (`prefect deployment run --watch` shows
that line: tests/test_quickstart.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
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


def run_logs(flow_run_id: UUID) -> list[str]:
    APILogWorker.drain_all(timeout=30)  # logs are sent in batches: the last may still be queued
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


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
