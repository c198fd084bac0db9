"""Per-connection fetch limit and overlapping refreshes, measured at the source."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from flows.data import run_connection_data_refresh
from tasks.refresh_table import refresh_table_data
from tasks.schema import refresh_connection_schema
from tests.services import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER
from tests.source_dbs import PostgresSource, create_numbered_table
from tests.world import World, make_world

LIMIT = 3


@pytest.fixture
def pg_world(prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world("sqlite", "postgres", tmp_path, refresh_concurrency=LIMIT) as world:
        yield world


def create_slow_views(source: PostgresSource, count: int, seconds: float) -> None:
    """Views that take `seconds` to read, so fetches overlap long enough to be counted."""
    source.execute(
        *(
            f"CREATE VIEW slow_{i} AS SELECT g.i AS id FROM generate_series(1, 3) AS g(i) "
            f"CROSS JOIN pg_sleep({seconds}) AS s"
            for i in range(count)
        )
    )


@contextmanager
def peak_active_queries(database: str) -> Iterator[list[int]]:
    """Samples the source's running reads of the slow views; yields [peak] filled on exit."""
    peak = [0]
    stop = threading.Event()
    dsn = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user={POSTGRES_USER} dbname={database}"

    def sample() -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                    "AND state = 'active' AND query LIKE %s AND pid <> pg_backend_pid()",
                    (database, "%slow\\_%"),
                ).fetchone()
                peak[0] = max(peak[0], row[0] if row else 0)
                time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield peak
    finally:
        stop.set()
        sampler.join()


def test_connection_refresh_runs_exactly_limit_fetches_at_once(pg_world: World) -> None:
    source = pg_world.source
    assert isinstance(source, PostgresSource)
    create_slow_views(source, count=3 * LIMIT, seconds=1.0)
    conn_id = pg_world.register()
    refresh_connection_schema(conn_id)
    with peak_active_queries(source.database) as peak:
        result = run_connection_data_refresh(conn_id)
    assert (result["tables_refreshed"], result["tables_failed"]) == (3 * LIMIT, 0)
    assert peak[0] == LIMIT


def test_limit_holds_across_two_overlapping_connection_refreshes(pg_world: World) -> None:
    source = pg_world.source
    assert isinstance(source, PostgresSource)
    create_slow_views(source, count=2 * LIMIT, seconds=1.0)
    conn_id = pg_world.register()
    refresh_connection_schema(conn_id)
    results: list[dict[str, object]] = []
    with peak_active_queries(source.database) as peak:
        runs = [
            threading.Thread(target=lambda: results.append(run_connection_data_refresh(conn_id)))
            for _ in range(2)
        ]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
    assert [r["tables_refreshed"] for r in results] == [2 * LIMIT, 2 * LIMIT]
    assert peak[0] == LIMIT


def test_concurrent_refreshes_of_one_table_leave_one_live_file(pg_world: World) -> None:
    create_numbered_table(pg_world.source, "t", 1000)
    conn_id = pg_world.register()
    refresh_connection_schema(conn_id)
    errors: list[BaseException] = []

    def refresh() -> None:
        try:
            refresh_table_data(conn_id, "public", "t")
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
