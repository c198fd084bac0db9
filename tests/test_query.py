"""SQL over the cache: lazy caching, swaps, concurrency, errors and results, on real sources."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from query import (
    QueryEngine,
    QueryError,
    QueryRejectedError,
    QueryResult,
    UnknownTableError,
    collect,
)
from tasks.refresh_table import fetch_for_query, refresh_table_now
from tasks.schema import refresh_connection_schema
from tests.querying import run_query
from tests.source_dbs import create_numbered_table
from tests.world import World


def discovered(world: World, *tables: tuple[str, int]) -> int:
    """Create numbered tables in the source, register it as "src" and discover them."""
    for name, rows in tables:
        create_numbered_table(world.source, name, rows)
    conn_id = world.register("src")
    refresh_connection_schema(world.runtime, conn_id)
    return conn_id


def ref(world: World, table: str) -> str:
    return f'"src"."{world.source.schema}"."{table}"'


def ids(result: QueryResult) -> list[int]:
    return [row[0] for row in result.rows]


def test_first_query_caches_the_table_and_returns_its_rows(world: World) -> None:
    conn_id = discovered(world, ("customers", 3))
    assert world.catalog.get_table(conn_id, world.source.schema, "customers").parquet_path is None

    result = run_query(
        world.runtime, f"SELECT id, label FROM {ref(world, 'customers')} ORDER BY id"
    )

    assert result.columns == ["id", "label"]
    assert result.rows == [[1, "row 1"], [2, "row 2"], [3, "row 3"]]
    assert result.row_count == 3
    assert result.truncated is False
    assert result.execution_time_ms >= 0
    path = world.catalog.get_table(conn_id, world.source.schema, "customers").parquet_path
    assert path is not None
    assert world.cache_files() == {path}


def test_later_queries_read_the_cache_without_fetching_again(world: World) -> None:
    discovered(world, ("customers", 3))
    sql = f"SELECT count(*) FROM {ref(world, 'customers')}"
    assert run_query(world.runtime, sql).rows == [[3]]
    files = world.cache_files()
    world.source.execute(f"INSERT INTO {world.source.schema}.customers VALUES (4, 'row 4')")

    assert run_query(world.runtime, sql).rows == [[3]]  # the cache, not the source
    refresh_connection_schema(world.runtime, world.catalog.get_connection_by_name("src").id)
    assert run_query(world.runtime, sql).rows == [[3]]  # a schema refresh keeps the cached data
    assert world.cache_files() == files


def test_join_across_two_tables(world: World) -> None:
    schema = world.source.schema
    create_numbered_table(world.source, "customers", 3)
    world.source.execute(
        f"CREATE TABLE {schema}.orders AS SELECT i AS id, (i % 3) + 1 AS customer_id "
        "FROM generate_series(1, 6) AS g(i)"
    )
    refresh_connection_schema(world.runtime, world.register("src"))

    result = run_query(
        world.runtime,
        f"SELECT c.label, count(*) AS orders FROM {ref(world, 'orders')} o "
        f"JOIN {ref(world, 'customers')} c ON c.id = o.customer_id "
        "GROUP BY c.label ORDER BY c.label",
    )

    assert result.columns == ["label", "orders"]
    assert result.rows == [["row 1", 2], ["row 2", 2], ["row 3", 2]]
    assert len(world.cache_files()) == 2


def test_data_refresh_shows_new_rows(world: World) -> None:
    conn_id = discovered(world, ("events", 2))
    sql = f"SELECT id FROM {ref(world, 'events')} ORDER BY id"
    assert ids(run_query(world.runtime, sql)) == [1, 2]
    world.source.execute(f"INSERT INTO {world.source.schema}.events VALUES (3, 'row 3')")

    refresh_table_now(world.runtime, conn_id, world.source.schema, "events")

    assert ids(run_query(world.runtime, sql)) == [1, 2, 3]


def test_a_query_reads_the_file_current_when_it_started(world: World) -> None:
    conn_id = discovered(world, ("events", 2))
    schema = world.source.schema
    refresh_table_now(world.runtime, conn_id, schema, "events")
    old_path = world.catalog.get_table(conn_id, schema, "events").parquet_path
    world.source.execute(f"INSERT INTO {schema}.events VALUES (3, 'row 3')")

    sql = f"SELECT id FROM {ref(world, 'events')} ORDER BY id"
    with QueryEngine(world.runtime, fetch_for_query) as engine, engine.start(sql) as query:
        refresh_table_now(
            world.runtime, conn_id, schema, "events"
        )  # the swap, after the query started
        new_path = world.catalog.get_table(conn_id, schema, "events").parquet_path
        result = collect(query, engine.limits)

    assert new_path != old_path
    assert [s.files for s in query.files.values()] == [(old_path,)]
    assert ids(result) == [1, 2]  # the old file's rows
    assert ids(run_query(world.runtime, f"SELECT id FROM {ref(world, 'events')} ORDER BY id")) == [
        1,
        2,
        3,
    ]


def test_concurrent_first_queries_fetch_the_table_once(world: World) -> None:
    conn_id = discovered(world, ("events", 50))
    sql = f"SELECT count(*) FROM {ref(world, 'events')}"
    with QueryEngine(world.runtime, fetch_for_query) as engine:  # as in the webhook: one engine

        def query() -> QueryResult:
            with engine.start(sql) as running:
                return collect(running, engine.limits)

        results = run_in_threads(4, query)

    assert [r.rows for r in results] == [[[50]]] * 4
    path = world.catalog.get_table(conn_id, world.source.schema, "events").parquet_path
    assert world.cache_files() == {path}  # one file written
    assert world.catalog.list_deletions() == []  # and none replaced


def test_concurrent_first_queries_of_different_tables(world: World) -> None:
    names = ["t1", "t2", "t3"]
    discovered(world, *((name, 5) for name in names))
    queries = iter(f"SELECT count(*) FROM {ref(world, name)}" for name in names)
    lock = threading.Lock()

    def next_query() -> QueryResult:
        with lock:
            sql = next(queries)
        return run_query(world.runtime, sql)

    assert [r.rows for r in run_in_threads(3, next_query)] == [[[5]]] * 3
    assert len(world.cache_files()) == 3


def run_in_threads(count: int, work: Callable[[], QueryResult]) -> list[QueryResult]:
    """Run ``work`` in ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def target(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work()
        except BaseException as exc:
            results[index] = exc

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def test_unknown_table_is_named(world: World) -> None:
    discovered(world, ("events", 1))
    missing = ref(world, "nope")
    with pytest.raises(UnknownTableError, match=missing):
        run_query(world.runtime, f"SELECT * FROM {ref(world, 'events')}, {missing}")
    with pytest.raises(UnknownTableError, match='"ghost"'):
        run_query(world.runtime, 'SELECT * FROM "ghost"."main"."events"')
    assert world.cache_files() == set()  # nothing fetched for a query that cannot run


def test_a_query_can_read_only_the_files_of_its_own_tables(world: World) -> None:
    conn_id = discovered(world, ("a", 1), ("b", 1))
    run_query(world.runtime, f"SELECT * FROM {ref(world, 'b')}")
    b_path = world.catalog.get_table(conn_id, world.source.schema, "b").parquet_path
    assert b_path is not None

    with pytest.raises(QueryRejectedError):
        run_query(world.runtime, f"SELECT * FROM {ref(world, 'a')}, read_parquet('{b_path}')")


def test_json_safe_values_from_the_cache(world: World) -> None:
    schema = world.source.schema
    blob = "'\\x0102'::bytea" if world.source.kind == "postgres" else "'\\x01\\x02'::BLOB"
    world.source.execute(
        f"CREATE TABLE {schema}.typed AS SELECT CAST(12.50 AS NUMERIC(10, 2)) AS price, "
        f"TIMESTAMP '2024-01-02 03:04:05.5' AS at, {blob} AS payload, "
        "CAST('NaN' AS DOUBLE PRECISION) AS ratio"
    )
    refresh_connection_schema(world.runtime, world.register("src"))

    result = run_query(world.runtime, f"SELECT * FROM {ref(world, 'typed')}")

    assert result.rows == [["12.50", "2024-01-02T03:04:05.500000", "AQI=", "NaN"]]
    assert_json_strict(result)


def assert_json_strict(result: QueryResult) -> None:
    json.dumps(result.model_dump(), allow_nan=False)


def test_truncation_of_a_cached_table(world: World) -> None:
    discovered(world, ("events", 20))
    result = run_query(
        world.runtime, f"SELECT id FROM {ref(world, 'events')} ORDER BY id", row_limit=5
    )
    assert ids(result) == [1, 2, 3, 4, 5]
    assert (result.row_count, result.truncated) == (5, True)

    exact = run_query(world.runtime, f"SELECT id FROM {ref(world, 'events')}", row_limit=20)
    assert (exact.row_count, exact.truncated) == (20, False)


def test_cached_tables_are_named_as_written(world: World) -> None:
    """Each cached table becomes a view of the query's own: the SQL around it reads the same."""
    schema = world.source.schema
    create_numbered_table(world.source, "orders", 3)
    world.source.execute(
        "CREATE SCHEMA other",
        "CREATE TABLE other.orders AS SELECT i AS id, 'other ' || i AS label "
        "FROM generate_series(1, 2) AS g(i)",
    )
    refresh_connection_schema(world.runtime, world.register("src"))
    orders, other = ref(world, "orders"), '"src"."other"."orders"'

    def rows(sql: str) -> list[list[Any]]:
        return run_query(world.runtime, sql).rows

    assert rows(f"SELECT orders.id FROM {orders} WHERE orders.id > 2") == [[3]]
    assert rows(f"SELECT {schema}.orders.id FROM {orders} WHERE src.{schema}.orders.id = 2") == [
        [2]
    ]
    assert rows(f"SELECT o.label FROM {orders} AS o(i, label) WHERE o.i = 1") == [["row 1"]]
    assert rows(f"SELECT count(*) FROM {orders} a JOIN {orders} b ON a.id < b.id") == [[3]]
    assert rows(
        f"SELECT {schema}.orders.id, other.orders.label FROM {orders}, {other} "
        f"WHERE {schema}.orders.id = other.orders.id ORDER BY 1"
    ) == [[1, "other 1"], [2, "other 2"]]
    assert rows(
        f"WITH big AS (SELECT * FROM {orders} WHERE id > 1) "
        f"SELECT (SELECT count(*) FROM big), (SELECT max(id) FROM {other})"
    ) == [[2, 2]]
    assert rows(f"FROM {orders} SELECT max(id)") == [[3]]


def test_errors_name_the_tables_as_written(world: World) -> None:
    discovered(world, ("orders", 3))
    with pytest.raises(QueryError) as raised:
        run_query(world.runtime, f"SELECT nope FROM {ref(world, 'orders')}")
    message = str(raised.value)
    assert '"nope"' in message and "__freshcache" not in message
    assert world.storage.root not in message
