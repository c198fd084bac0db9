"""The refresh plan through the Prefect flows, on both catalog and source backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.executors import FlowExecutor
from tests.scenarios import SCENARIOS, Scenario
from tests.world import World, make_world


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_refresh_scenario(world: World, scenario: Scenario) -> None:
    scenario(world, FlowExecutor())


@pytest.fixture
def s3_world(
    prefect_server: None, tmp_path: Path, s3_cache_url: str, s3_endpoint_url: str
) -> Iterator[World]:
    """As in production: the catalog on PostgreSQL, the cache on S3 (moto), a PostgreSQL source."""
    with make_world(
        "postgresql",
        "postgres",
        tmp_path,
        cache_url=s3_cache_url,
        s3_endpoint_url=s3_endpoint_url,
    ) as world:
        assert world.storage.is_s3
        yield world


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_refresh_scenario_with_the_cache_on_s3(s3_world: World, scenario: Scenario) -> None:
    scenario(s3_world, FlowExecutor())


def test_cached_only_refreshes_just_the_cached_tables(world: World) -> None:
    from flows.data import refresh_connection_data
    from tasks.refresh_table import refresh_table_now
    from tasks.schema import refresh_connection_schema
    from tests.source_dbs import create_numbered_table

    s = world.source.schema
    for name in ("cached", "cold1", "cold2"):
        create_numbered_table(world.source, name, 4)
    conn_id = world.register()
    refresh_connection_schema(world.runtime, conn_id)
    refresh_table_now(world.runtime, conn_id, s, "cached")
    world.source.execute(f"INSERT INTO {s}.cached VALUES (5, 'row 5')")

    result = refresh_connection_data(conn_id, cached_only=True)

    assert (result["tables_refreshed"], result["total_rows"]) == (1, 5)
    assert world.catalog.get_table(conn_id, s, "cold1").parquet_path is None
    assert world.catalog.get_table(conn_id, s, "cold2").parquet_path is None


def test_a_refresh_run_in_process_persists_no_result(prefect_server: None, tmp_path: Path) -> None:
    """Its result is handed back in the process: a result file per run in Prefect's storage
    would pile up with every webhook refresh. The flow run's completed state has no result
    stored with it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    from flows.refresh import refresh_inline
    from flows.request import RefreshRequest
    from tests.source_dbs import create_numbered_table

    with make_world("sqlite", "duckdb", tmp_path) as world:
        create_numbered_table(world.source, "orders", 5)
        conn_id = world.register()
        refresh_inline(world.runtime, RefreshRequest.checked(connection_id=conn_id))
        request = RefreshRequest.checked(
            connection_id=conn_id, schema_name=world.source.schema, table_name="orders", data=True
        )
        result = refresh_inline(world.runtime, request)
    assert result["rows_synced"] == 5
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["refresh"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    assert run.state is not None and run.state.is_completed(), run.state
    assert run.state.data is None, run.state.data
