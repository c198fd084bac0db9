"""Several workers: two processes serving the `refresh` flow, the catalog on PostgreSQL, the cache
on S3 (moto), one connection of 40 tables refreshed by both at once with schema refreshes.

Each process serves the flow under its own deployment name, so the test decides which process
runs which flow run. The per-connection fetch limit is a Prefect global concurrency limit; the
source counts how many fetches run at once across both processes (tests/fetch_counter.py).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import FlowRun

from bench.process import stop_process
from catalog import Catalog
from core.cleanup import delete_due_files
from core.connections import register_connection
from orchestration.secrets import externalize_password
from runtime.container import Runtime
from runtime.settings import Settings
from storage import CacheStorage
from tasks.concurrency import connection_limit_name
from tasks.schema import refresh_connection_schema
from tests.fetch_counter import counting_fetches, install_fetch_counter
from tests.reliability_support import (
    PROJECT_DIR,
    assert_nothing_leaks,
    cache_state,
    reset_connection_limit,
    runtime_env,
)
from tests.services import fresh_postgres_database, postgres_url
from tests.source_dbs import PostgresSource

pytestmark = pytest.mark.long_file(115)

TABLES = 40
LIMIT = 4
FETCH_SECONDS = 0.5
WORKERS = ("reliability-a", "reliability-b")
SERVE = "import sys; from flows.refresh import refresh; refresh.serve(name=sys.argv[1])"


def create_slow_views(source: PostgresSource) -> None:
    """Views named slow_NN of 100+NN rows each, taking a while to read, counted at the source."""
    install_fetch_counter(source)
    source.execute(
        *(
            f"CREATE VIEW slow_{i:02d} AS SELECT g.i AS id, {i} AS tag "
            f"FROM generate_series(1, {100 + i}) AS g(i) "
            f"CROSS JOIN counted_sleep({FETCH_SECONDS}) AS s"
            for i in range(TABLES)
        )
    )


@contextmanager
def s3_world(tmp_path: Path, cache_url: str, endpoint: str) -> Iterator[Runtime]:
    """A Runtime on a fresh PostgreSQL catalog and the S3 cache."""
    with fresh_postgres_database() as catalog_db:
        settings = Settings(
            data_dir=tmp_path / "data",
            catalog_url=postgres_url(catalog_db),
            cache_url=cache_url,
            s3_endpoint_url=endpoint,
            deletion_grace_seconds=0,
            refresh_concurrency=LIMIT,
        )
        runtime = Runtime(
            settings=settings,
            catalog=Catalog.from_url(settings.resolved_catalog_url),
            storage=CacheStorage(cache_url, s3_endpoint_url=endpoint),
        )
        try:
            yield runtime
        finally:
            runtime.close()


@contextmanager
def serving_workers(env: dict[str, str], logs: Path) -> Iterator[None]:
    """Two processes, each serving the refresh flow under one of WORKERS."""
    with ExitStack() as stack:
        for name in WORKERS:
            log = stack.enter_context((logs / f"{name}.log").open("w"))
            worker = subprocess.Popen(
                [sys.executable, "-c", SERVE, name],
                env={**env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"},
                cwd=PROJECT_DIR,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            stack.callback(stop_process, worker, 20)
        yield


def deployment_ids(client: SyncPrefectClient, timeout: float = 90) -> dict[str, UUID]:
    deadline = time.monotonic() + timeout
    ids: dict[str, UUID] = {}
    while len(ids) < len(WORKERS):
        for name in WORKERS:
            try:
                ids[name] = client.read_deployment_by_name(f"refresh/{name}").id
            except Exception:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.5)
    return ids


def run_all(
    client: SyncPrefectClient, runs: list[tuple[UUID, dict[str, Any]]], timeout: float = 150
) -> list[FlowRun]:
    """Start the flow runs at once and wait until every one has finished."""
    ids = [
        client.create_flow_run_from_deployment(deployment, parameters=parameters).id
        for deployment, parameters in runs
    ]
    deadline = time.monotonic() + timeout
    while True:
        finished = [client.read_flow_run(run_id) for run_id in ids]
        if all(run.state is not None and run.state.is_final() for run in finished):
            return finished
        assert time.monotonic() < deadline, [run.state for run in finished]
        time.sleep(0.5)


def result_of(run: FlowRun) -> dict[str, Any]:
    assert run.state is not None and run.state.is_completed(), run.state
    result: dict[str, Any] = run.state.result()
    return result


def overlap(a: FlowRun, b: FlowRun) -> float:
    """Seconds during which both runs were running."""
    assert a.start_time and a.end_time and b.start_time and b.end_time
    both = min(a.end_time, b.end_time) - max(a.start_time, b.start_time)
    return max(both, timedelta(0)).total_seconds()


def duration(run: FlowRun) -> float:
    assert run.start_time and run.end_time
    return (run.end_time - run.start_time).total_seconds()


def cached_contents(runtime: Runtime) -> dict[str, list[tuple[int, int]]]:
    """Every cached table's rows, sorted, read from its live S3 object."""
    contents = {}
    for table in runtime.catalog.list_tables():
        assert table.parquet_path is not None, f"{table.table_name} is not cached"
        with runtime.storage.filesystem.open(table.parquet_path, "rb") as handle:
            data = pq.read_table(handle).to_pylist()
        contents[table.table_name] = sorted((row["id"], row["tag"]) for row in data)
    return contents


def test_two_workers_share_the_limit_and_match_a_single_worker(
    prefect_server: None,
    s3_endpoint_url: str,
    s3_cache_url: str,
    tmp_path: Path,
    pg_database: str,
) -> None:
    source = PostgresSource(pg_database)
    create_slow_views(source)
    with (
        s3_world(tmp_path, s3_cache_url, s3_endpoint_url) as runtime,
        get_client(sync_client=True) as client,
    ):
        source_type, config = source.registration()
        conn_id = register_connection(
            runtime.catalog, externalize_password, "src", source_type, config
        ).id
        refresh_connection_schema(runtime, conn_id)
        reset_connection_limit(conn_id)
        with serving_workers(runtime_env(runtime.settings), tmp_path):
            a, b = deployment_ids(client).values()
            data = {"connection_id": conn_id, "data": True}
            schema = {"connection_id": conn_id}

            # One worker alone: the reference result.
            with counting_fetches(source) as single_fetches:
                (single,) = run_all(client, [(a, data)])
            reference = cached_contents(runtime)
            single_result = result_of(single)
            synced_before = {
                t.table_name: t.last_sync for t in runtime.catalog.list_tables() if t.last_sync
            }

            # Both workers at once, each refreshing every table, with schema refreshes on both.
            with counting_fetches(source) as both_fetches:
                both = run_all(client, [(a, data), (b, data), (a, schema), (b, schema)])
            data_a, data_b, schema_a, schema_b = both

        results = [result_of(data_a), result_of(data_b)]
        schema_results = [result_of(schema_a), result_of(schema_b)]
        state = cache_state(runtime)
        cleaned = delete_due_files(runtime)
        after = cache_state(runtime)
        contents = cached_contents(runtime)
        tables = runtime.catalog.list_tables()
        slots = client.read_global_concurrency_limit_by_name(connection_limit_name(conn_id))

    print(
        f"\n[workers] single worker: {single_result['tables_refreshed']} tables, "
        f"{single_result['total_rows']} rows in {duration(single):.1f} s, "
        f"peak {single_fetches.peak} fetches at the source; "
        f"two workers: {[r['tables_refreshed'] for r in results]} tables refreshed in "
        f"{duration(data_a):.1f} s / {duration(data_b):.1f} s, "
        f"runs overlapped {overlap(data_a, data_b):.1f} s, peak {both_fetches.peak} fetches "
        f"(limit {LIMIT}); schema refreshes overlapped the data runs "
        f"{overlap(schema_a, data_a):.1f} s / {overlap(schema_b, data_b):.1f} s; "
        f"{len(state.files)} objects before cleanup, {len(cleaned.deleted)} deleted, "
        f"{len(after.files)} left; slots taken at the end {slots.active_slots}"
    )
    expected = {"tables_refreshed": TABLES, "tables_failed": 0, "errors": []}
    assert {k: single_result[k] for k in expected} == expected
    for result in results:
        assert {k: result[k] for k in expected} == expected
        assert result["total_rows"] == single_result["total_rows"]
    for result in schema_results:
        assert (result["tables_discovered"], result["tables_removed"]) == (TABLES, 0)
    assert overlap(data_a, data_b) > 0, "the two data refreshes did not run at the same time"
    assert (single_fetches.started, single_fetches.finished) == (TABLES, TABLES)
    assert (both_fetches.started, both_fetches.finished) == (2 * TABLES, 2 * TABLES)
    # Two workers' eight threads keep the limit full; one worker's four reach it only when all
    # four are between their Prefect calls at once, which a loaded machine may never line up.
    assert both_fetches.peak == LIMIT
    assert 1 < single_fetches.peak <= LIMIT
    assert len(synced_before) == TABLES
    assert all(t.last_sync and t.last_sync > synced_before[t.table_name] for t in tables)
    assert contents == reference
    assert_nothing_leaks(state)
    assert cleaned.failed == []
    assert after.files == after.referenced and len(after.files) == TABLES and not after.queued
    assert slots.active_slots == 0
