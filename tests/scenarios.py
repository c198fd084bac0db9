"""The refresh plan as scenarios: each runs through the flows and through POST /refresh."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from tests.executors import Executor
from tests.source_dbs import create_numbered_table
from tests.world import World

Scenario = Callable[[World, Executor], None]
SCENARIOS: list[Scenario] = []

SCHEMA_FIELDS = {
    "connections_refreshed",
    "tables_discovered",
    "tables_added",
    "tables_removed",
    "tables_modified",
}
TABLE_FIELDS = {
    "connection_id",
    "schema_name",
    "table_name",
    "rows_synced",
    "duration_ms",
    "superseded",
}
CONNECTION_FIELDS = {
    "connection_id",
    "tables_refreshed",
    "tables_failed",
    "total_rows",
    "duration_ms",
    "errors",
    "tables_superseded",
}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS.append(fn)
    return fn


def ok(run: Executor, body: dict[str, object]) -> dict[str, object]:
    status, result = run.refresh(body)
    assert status == 200, (status, result)
    return result


def three_tables(world: World) -> int:
    for name, rows in (("customers", 10), ("orders", 20), ("products", 5)):
        create_numbered_table(world.source, name, rows)
    return world.register()


def cached_ids(world: World, conn_id: int, table: str) -> list[int]:
    path = world.catalog.get_table(conn_id, world.source.schema, table).parquet_path
    assert path is not None
    return sorted(world.read_cache_file(path).column("id").to_pylist())


@scenario
def schema_refresh_of_all_connections_counts_both(world: World, run: Executor) -> None:
    three_tables(world)
    other = world.tmp_path / "other"
    other.mkdir()
    from tests.source_dbs import DuckDBSource

    second = DuckDBSource(other / "second.duckdb")
    create_numbered_table(second, "events", 3)
    world.register("second", second)
    result = ok(run, {})
    assert result.keys() >= SCHEMA_FIELDS
    assert result["connections_refreshed"] == 2
    assert result["tables_discovered"] == 4
    assert result["tables_added"] == 4
    assert result["connections_failed"] == 0


@scenario
def schema_refresh_of_one_connection_discovers_its_tables(world: World, run: Executor) -> None:
    conn_id = three_tables(world)
    result = ok(run, {"connection_id": conn_id})
    assert {k: result[k] for k in SCHEMA_FIELDS} == {
        "connections_refreshed": 1,
        "tables_discovered": 3,
        "tables_added": 3,
        "tables_removed": 0,
        "tables_modified": 0,
    }
    assert [t.table_name for t in world.catalog.list_tables(conn_id)] == [
        "customers",
        "orders",
        "products",
    ]


@scenario
def schema_refresh_counts_added_removed_and_modified(world: World, run: Executor) -> None:
    conn_id = three_tables(world)
    ok(run, {"connection_id": conn_id})
    ok(
        run,
        {
            "connection_id": conn_id,
            "schema_name": world.source.schema,
            "table_name": "orders",
            "data": True,
        },
    )
    ok(
        run,
        {
            "connection_id": conn_id,
            "schema_name": world.source.schema,
            "table_name": "customers",
            "data": True,
        },
    )
    orders_path = world.catalog.get_table(conn_id, world.source.schema, "orders").parquet_path
    customers_path = world.catalog.get_table(conn_id, world.source.schema, "customers").parquet_path
    s = world.source.schema
    world.source.execute(
        f"CREATE TABLE {s}.suppliers (id INTEGER)",
        f"DROP TABLE {s}.orders",
        f"ALTER TABLE {s}.products ADD COLUMN price DOUBLE PRECISION",
    )
    result = ok(run, {"connection_id": conn_id})
    assert (result["tables_added"], result["tables_removed"], result["tables_modified"]) == (
        1,
        1,
        1,
    )
    assert result["tables_discovered"] == 3
    change = result["changes"][0]
    assert [t["table_name"] for t in change["added"]] == ["suppliers"]
    assert [t["table_name"] for t in change["removed"]] == ["orders"]
    assert change["modified"][0]["table_name"] == "products"
    assert change["modified"][0]["columns_added"] == ["price"]
    # The dropped table's file waits in the deletion queue; the unchanged table keeps its cache.
    assert orders_path in {d.path for d in world.catalog.list_deletions()}
    assert world.catalog.get_table(conn_id, s, "customers").parquet_path == customers_path
    assert cached_ids(world, conn_id, "customers") == list(range(1, 11))


@scenario
def failing_connection_among_several_is_reported(world: World, run: Executor) -> None:
    good = three_tables(world)
    missing = world.tmp_path / "gone.duckdb"
    from core.connections import register_connection
    from orchestration.secrets import externalize_password

    bad = register_connection(
        world.catalog, externalize_password, "broken", "duckdb", {"path": str(missing)}
    ).id
    result = ok(run, {})
    assert result["connections_refreshed"] == 1
    assert result["connections_failed"] == 1
    assert [e["connection_id"] for e in result["errors"]] == [bad]
    assert "broken" in result["errors"][0]["error"]
    assert len(world.catalog.list_tables(good)) == 3
    assert not missing.exists()
    status, body = run.refresh({"connection_id": bad})
    assert status == 500 and "broken" in body["error"]


@scenario
def dry_run_changes_nothing(world: World, run: Executor) -> None:
    conn_id = three_tables(world)
    result = ok(run, {"connection_id": conn_id, "dry_run": True})
    assert result["tables_added"] == 3 and result["dry_run"] is True
    assert world.catalog.list_tables(conn_id) == []


@scenario
def table_data_refresh_shows_new_rows_and_schedules_old_file(world: World, run: Executor) -> None:
    conn_id = three_tables(world)
    ok(run, {"connection_id": conn_id})
    body = {
        "connection_id": conn_id,
        "schema_name": world.source.schema,
        "table_name": "orders",
        "data": True,
    }
    first = ok(run, body)
    assert set(first) == TABLE_FIELDS
    assert first["rows_synced"] == 20 and isinstance(first["duration_ms"], int)
    assert first["superseded"] is False
    old_path = world.catalog.get_table(conn_id, world.source.schema, "orders").parquet_path
    world.source.execute(f"INSERT INTO {world.source.schema}.orders VALUES (21, 'row 21')")
    before = world.catalog.clock()
    second = ok(run, body)
    assert second["rows_synced"] == 21
    table = world.catalog.get_table(conn_id, world.source.schema, "orders")
    assert table.parquet_path != old_path
    assert cached_ids(world, conn_id, "orders") == list(range(1, 22))
    (pending,) = world.catalog.list_deletions()
    assert pending.path == old_path
    grace = timedelta(seconds=world.runtime.settings.deletion_grace_seconds)
    assert before + grace <= pending.delete_after <= world.catalog.clock() + grace
    assert world.storage.filesystem.exists(old_path)


@scenario
def connection_data_refresh_isolates_a_failing_table(world: World, run: Executor) -> None:
    for i in range(5):
        create_numbered_table(world.source, f"t{i}", 10 * (i + 1))
    conn_id = world.register()
    ok(run, {"connection_id": conn_id})
    result = ok(run, {"connection_id": conn_id, "data": True})
    assert set(result) == CONNECTION_FIELDS
    assert (
        result["tables_refreshed"],
        result["tables_failed"],
        result["total_rows"],
        result["tables_superseded"],
    ) == (5, 0, 150, 0)
    world.source.execute(f"DROP TABLE {world.source.schema}.t2")
    result = ok(run, {"connection_id": conn_id, "data": True})
    assert (result["tables_refreshed"], result["tables_failed"]) == (4, 1)
    (error,) = result["errors"]
    assert (error["schema_name"], error["table_name"]) == (world.source.schema, "t2")
    assert "t2" in error["error"]


@scenario
def invalid_requests_are_rejected_before_anything_runs(world: World, run: Executor) -> None:
    conn_id = three_tables(world)
    s = world.source.schema
    rejected = [
        {"schema_name": s},
        {"schema_name": s, "table_name": "orders"},
        {"connection_id": conn_id, "table_name": "orders"},
        {"data": True},
        {"connection_id": conn_id, "schema_name": s},
        {"connection_id": conn_id, "schema_name": s, "table_name": "orders"},
        {"connection_id": conn_id, "schema_name": s, "table_name": "orders", "data": False},
        {"conection_id": conn_id},
    ]
    for body in rejected:
        status, result = run.refresh(body)
        assert status == 400, (body, status, result)
        assert set(result) == {"error"} and result["error"]
    status, result = run.refresh({"connection_id": "one"})
    assert status == 422 and "connection_id" in result["error"]
    assert world.catalog.list_tables(conn_id) == []


@scenario
def unknown_connection_and_table_give_404(world: World, run: Executor) -> None:
    conn_id = three_tables(world)
    ok(run, {"connection_id": conn_id})
    for body in (
        {"connection_id": 999},
        {"connection_id": 999, "data": True},
        {
            "connection_id": conn_id,
            "schema_name": world.source.schema,
            "table_name": "nope",
            "data": True,
        },
    ):
        status, result = run.refresh(body)
        assert status == 404, (body, status, result)
        assert "not found" in result["error"]
