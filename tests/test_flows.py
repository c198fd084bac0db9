"""The refresh plan through the Prefect flows, on both catalog and source backends."""

from __future__ import annotations

import pytest

from tests.executors import FlowExecutor
from tests.scenarios import SCENARIOS, Scenario
from tests.world import World


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_refresh_scenario(world: World, scenario: Scenario) -> None:
    scenario(world, FlowExecutor())


def test_cached_only_refreshes_just_the_cached_tables(world: World) -> None:
    from flows.data import run_connection_data_refresh
    from tasks.refresh_table import refresh_table_data
    from tasks.schema import refresh_connection_schema
    from tests.source_dbs import create_numbered_table

    s = world.source.schema
    for name in ("cached", "cold1", "cold2"):
        create_numbered_table(world.source, name, 4)
    conn_id = world.register()
    refresh_connection_schema(conn_id)
    refresh_table_data(conn_id, s, "cached")
    world.source.execute(f"INSERT INTO {s}.cached VALUES (5, 'row 5')")

    result = run_connection_data_refresh(conn_id, cached_only=True)

    assert (result["tables_refreshed"], result["total_rows"]) == (1, 5)
    assert world.catalog.get_table(conn_id, s, "cold1").parquet_path is None
    assert world.catalog.get_table(conn_id, s, "cold2").parquet_path is None
