"""Per-connection fetch limit and overlapping refreshes, measured at the source."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.data import refresh_connection_data
from runtime.container import runtime_scope
from tasks.concurrency import connection_limit_name, ensure_connection_limit
from tasks.refresh_table import refresh_table_now
from tasks.schema import refresh_connection_schema
from tests.fetch_counter import counting_fetches, install_fetch_counter, read_counts
from tests.source_dbs import PostgresSource, create_numbered_table
from tests.world import World, make_world

pytestmark = pytest.mark.long_file(60)

LIMIT = 3


@pytest.fixture
def pg_world(prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world("sqlite", "postgres", tmp_path, refresh_concurrency=LIMIT) as world:
        yield world


def create_slow_views(source: PostgresSource, count: int, seconds: float) -> None:
    """Views that take `seconds` to read, counted at the source (tests/fetch_counter.py)."""
    install_fetch_counter(source)
    source.execute(
        *(
            f"CREATE VIEW slow_{i} AS SELECT g.i AS id FROM generate_series(1, 3) AS g(i) "
            f"CROSS JOIN counted_sleep({seconds}) AS s"
            for i in range(count)
        )
    )


def test_connection_refresh_runs_exactly_limit_fetches_at_once(pg_world: World) -> None:
    source = pg_world.source
    assert isinstance(source, PostgresSource)
    create_slow_views(source, count=3 * LIMIT, seconds=1.0)
    conn_id = pg_world.register()
    refresh_connection_schema(pg_world.runtime, conn_id)
    with counting_fetches(source) as fetches:
        result = refresh_connection_data(conn_id)
    assert (result["tables_refreshed"], result["tables_failed"]) == (3 * LIMIT, 0)
    assert (fetches.started, fetches.finished, fetches.peak) == (3 * LIMIT, 3 * LIMIT, LIMIT)


def test_limit_holds_across_two_overlapping_connection_refreshes(pg_world: World) -> None:
    source = pg_world.source
    assert isinstance(source, PostgresSource)
    create_slow_views(source, count=2 * LIMIT, seconds=1.0)
    conn_id = pg_world.register()
    refresh_connection_schema(pg_world.runtime, conn_id)
    results: list[dict[str, object]] = []

    def refresh() -> None:
        # A thread starts in an empty context: the flow runs in the world's runtime if told so.
        with runtime_scope(pg_world.runtime):
            results.append(refresh_connection_data(conn_id))

    with counting_fetches(source) as fetches:
        runs = [threading.Thread(target=refresh) for _ in range(2)]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
    assert [r["tables_refreshed"] for r in results] == [2 * LIMIT, 2 * LIMIT]
    assert (fetches.started, fetches.finished, fetches.peak) == (4 * LIMIT, 4 * LIMIT, LIMIT)


def test_concurrent_refreshes_of_one_table_leave_one_live_file(pg_world: World) -> None:
    create_numbered_table(pg_world.source, "t", 1000)
    conn_id = pg_world.register()
    refresh_connection_schema(pg_world.runtime, conn_id)
    errors: list[BaseException] = []

    def refresh() -> None:
        try:
            refresh_table_now(pg_world.runtime, conn_id, "public", "t")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=refresh) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    live = pg_world.catalog.get_table(conn_id, "public", "t").parquet_path
    queued = [d.path for d in pg_world.catalog.list_deletions()]
    assert len(queued) == len(set(queued)) == 5
    assert pg_world.cache_files() == {live, *queued}


@pytest.fixture
def one_slot_world(prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world("sqlite", "postgres", tmp_path, refresh_concurrency=1) as world:
        yield world


def test_a_first_query_waits_for_one_fetch_of_a_connection_run_not_all(
    one_slot_world: World,
) -> None:
    """Slots are taken per fetch, and a run lets a fetch that waits go before its next table."""
    from tests.querying import run_query

    world = one_slot_world
    source = world.source
    assert isinstance(source, PostgresSource)
    # Each fetch takes long enough for the query's fetch to join the line while the first one
    # runs, on a loaded machine too (task start, slot request): the test is about the order.
    create_slow_views(source, count=4, seconds=4)
    conn_id = world.register()
    refresh_connection_schema(world.runtime, conn_id)
    refresh_connection_data(conn_id)  # the slow views are cached; `solo`, created next, is not
    create_numbered_table(source, "solo", 3)
    refresh_connection_schema(world.runtime, conn_id)

    def refresh_cached_tables() -> None:
        with runtime_scope(world.runtime):
            refresh_connection_data(conn_id, cached_only=True)

    with counting_fetches(source):
        run = threading.Thread(target=refresh_cached_tables)
        run.start()
        while read_counts(source).started == 0:  # the run's first fetch holds the only slot
            time.sleep(0.05)
        answer = run_query(world.runtime, 'SELECT count(*) FROM "src"."public"."solo"')
        run.join()
    assert answer.rows == [[3]]
    tables = world.catalog.list_tables(conn_id)
    solo = next(t for t in tables if t.table_name == "solo").snapshot_started_at
    after = [t for t in tables if t.table_name != "solo" and t.snapshot_started_at > solo]
    # One fetch was running when the query came; the run let the query go before the rest.
    assert len(after) == 3, [(t.table_name, t.snapshot_started_at) for t in tables]


def test_the_limit_is_the_users_once_created(pg_world: World) -> None:
    """A value set in the Prefect UI holds: runs create a missing limit, never resize one."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    source = pg_world.source
    assert isinstance(source, PostgresSource)
    create_slow_views(source, count=3, seconds=1.0)
    conn_id = pg_world.register()
    refresh_connection_schema(pg_world.runtime, conn_id)
    name = connection_limit_name(conn_id)
    ensure_connection_limit(conn_id, LIMIT)
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == LIMIT
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1))
    with counting_fetches(source) as fetches:
        result = refresh_connection_data(conn_id)
    ensure_connection_limit(conn_id, LIMIT)
    assert result["tables_refreshed"] == 3
    assert fetches.peak == 1
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(name).limit == 1


def test_a_limit_lowered_during_a_run_holds_from_the_next_fetch(pg_world: World) -> None:
    """A run keeps its slots from table to table, but gives back those the limit no longer
    allows: after the fetches running when the limit was lowered, one fetch at a time."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    source = pg_world.source
    assert isinstance(source, PostgresSource)
    create_slow_views(source, count=3 * LIMIT, seconds=1.0)
    conn_id = pg_world.register()
    refresh_connection_schema(pg_world.runtime, conn_id)
    ensure_connection_limit(conn_id, LIMIT)
    results: list[dict[str, object]] = []

    def refresh() -> None:
        with runtime_scope(pg_world.runtime):
            results.append(refresh_connection_data(conn_id))

    with counting_fetches(source) as fetches:
        run = threading.Thread(target=refresh)
        run.start()
        while read_counts(source).started < LIMIT:
            time.sleep(0.02)
        with get_client(sync_client=True) as client:
            client.update_global_concurrency_limit(
                connection_limit_name(conn_id), GlobalConcurrencyLimitUpdate(limit=1)
            )
        while read_counts(source).finished < LIMIT:
            time.sleep(0.02)
        source.execute("SELECT setval('fetches_peak', 1)")  # the peak from here on
        run.join()
    assert [r["tables_refreshed"] for r in results] == [3 * LIMIT]
    assert fetches.peak == 1


@pytest.fixture
def two_slot_world(prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world("sqlite", "postgres", tmp_path, refresh_concurrency=2) as world:
        yield world


def test_a_first_query_does_not_wait_for_a_runs_last_long_table(two_slot_world: World) -> None:
    """A run's thread with no table left gives its slot back: the query's fetch takes it while
    the run's other thread still reads its long table."""
    from tests.querying import run_query

    world = two_slot_world
    source = world.source
    assert isinstance(source, PostgresSource)
    install_fetch_counter(source)
    source.execute(
        *(
            f"CREATE VIEW {name} AS SELECT g.i AS id FROM generate_series(1, 3) AS g(i) "
            f"CROSS JOIN counted_sleep({seconds}) AS s"
            for name, seconds in (("short", 0.5), ("long", 15))
        )
    )
    conn_id = world.register()
    refresh_connection_schema(world.runtime, conn_id)

    def refresh_the_views() -> None:
        with runtime_scope(world.runtime):
            refresh_connection_data(conn_id)

    with counting_fetches(source):
        run = threading.Thread(target=refresh_the_views)
        run.start()
        while read_counts(source).finished == 0:  # the short view is read; the long one runs
            time.sleep(0.05)
        create_numbered_table(source, "solo", 3)  # found after the run listed its tables
        refresh_connection_schema(world.runtime, conn_id)
        answer = run_query(world.runtime, 'SELECT count(*) FROM "src"."public"."solo"')
        long_still_read = read_counts(source).finished == 1
        run.join()
    assert answer.rows == [[3]]
    assert long_still_read


def test_a_run_thread_moving_to_another_connection_gives_back_the_first_ones_slot(
    prefect_server: None,
) -> None:
    """A thread of a freshness run keeps no slot of a connection while it reads another's."""
    from uuid import uuid4

    from prefect.client.orchestration import get_client

    from orchestration.slots import KeptSlots

    first, second = (f"freshcache-test-{uuid4().hex}" for _ in range(2))
    with get_client(sync_client=True) as client:
        kept = KeptSlots(client)

        def taken(name: str) -> int:
            return int(client.read_global_concurrency_limit_by_name(name).active_slots)

        try:
            with kept.slot(first, 2):
                assert taken(first) == 1
            with kept.slot(second, 2):
                assert (taken(first), taken(second)) == (0, 1)
        finally:
            kept.close()
            for name in (first, second):
                client.delete_global_concurrency_limit_by_name(name)
