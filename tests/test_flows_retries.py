"""Retries: a transient source failure is retried with back-off, a missing table is not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows.data import refresh_table_data
from tasks.schema import refresh_connection_schema
from tests.source_dbs import DuckDBSource, create_numbered_table
from tests.world import World, make_world


@pytest.fixture
def world(prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world(
        "sqlite", "duckdb", tmp_path, refresh_retries=2, refresh_retry_delay_seconds=0.1
    ) as w:
        yield w


def attempts_of_refresh_task(flow_run_id: object) -> list[int]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return [run.run_count for run in runs if run.name.startswith("refresh-table")]


def test_unreachable_source_is_retried_then_fails(world: World) -> None:
    assert isinstance(world.source, DuckDBSource)
    create_numbered_table(world.source, "t", 3)
    conn_id = world.register()
    refresh_connection_schema(world.runtime, conn_id)
    world.source.path.unlink()
    state = refresh_table_data(conn_id, "main", "t", return_state=True)
    assert state.is_failed()
    assert "src" in str(state.result(raise_on_failure=False))
    assert attempts_of_refresh_task(state.state_details.flow_run_id) == [3]
    assert world.cache_files() == set()


def test_a_dropped_table_is_not_retried(world: World) -> None:
    create_numbered_table(world.source, "t", 3)
    conn_id = world.register()
    refresh_connection_schema(world.runtime, conn_id)
    world.source.execute("DROP TABLE main.t")
    state = refresh_table_data(conn_id, "main", "t", return_state=True)
    assert state.is_failed()
    assert attempts_of_refresh_task(state.state_details.flow_run_id) == [1]
    assert world.catalog.get_table(conn_id, "main", "t").parquet_path is None
