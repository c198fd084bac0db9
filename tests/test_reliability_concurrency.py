"""Readers during refreshes, and concurrent writers of one table, on both catalog backends."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.cleanup import delete_due_files
from tasks.concurrency import ensure_connection_limit
from tasks.refresh_table import refresh_table_now
from tasks.schema import refresh_connection_schema
from tests.querying import run_query
from tests.reliability_support import assert_nothing_leaks, cache_state, stress_seconds
from tests.source_dbs import SourceDB, create_numbered_table
from tests.world import World, make_world

BACKENDS = [
    pytest.param(("sqlite", "duckdb"), id="sqlite-catalog+duckdb-source"),
    pytest.param(("postgresql", "postgres"), id="pg-catalog+pg-source"),
]
READERS = 8
GRACE_SECONDS = 3.0
QUERY = 'SELECT min(version), max(version), count(*), sum(id) FROM "src"."{schema}"."t"'


def rows_of(version: int) -> int:
    return 5_000 + version


def expected(version: int) -> list[int]:
    rows = rows_of(version)
    return [version, version, rows, rows * (rows + 1) // 2]


def write_version(source: SourceDB, version: int) -> None:
    """Rewrite the source table: every row carries `version`, and the row count tells it too."""
    source.execute(
        f"DROP TABLE IF EXISTS {source.schema}.t",
        f"CREATE TABLE {source.schema}.t AS SELECT g.i AS id, {version} AS version "
        f"FROM generate_series(1, {rows_of(version)}) AS g(i)",
    )


def _world(
    request: pytest.FixtureRequest, tmp_path: Path, grace: float, **settings: float
) -> Iterator[World]:
    catalog_backend, source_kind = request.param
    with make_world(
        catalog_backend, source_kind, tmp_path, deletion_grace_seconds=grace, **settings
    ) as world:
        yield world


@pytest.fixture(params=BACKENDS)
def reader_world(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[World]:
    yield from _world(request, tmp_path, GRACE_SECONDS)


@pytest.fixture(params=BACKENDS)
def writer_world(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[World]:
    yield from _world(request, tmp_path, 600)


@dataclass
class ReaderLog:
    versions: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    mixed: list[list[int]] = field(default_factory=list)
    backwards: int = 0
    slowest: float = 0.0


def test_readers_see_the_old_or_the_new_version_never_a_mix(reader_world: World) -> None:
    source = reader_world.source
    write_version(source, 1)
    conn_id = reader_world.register()
    refresh_connection_schema(reader_world.runtime, conn_id)
    ensure_connection_limit(conn_id, reader_world.runtime.settings.refresh_concurrency)
    refresh_table_now(reader_world.runtime, conn_id, source.schema, "t")
    query = QUERY.format(schema=source.schema)
    stop = threading.Event()
    logs = [ReaderLog() for _ in range(READERS)]
    refreshes: list[int] = [1]
    deleted: list[str] = []
    failures: list[BaseException] = []

    def read(log: ReaderLog) -> None:
        last = 0
        while not stop.is_set():
            started = time.perf_counter()
            try:
                row = run_query(reader_world.runtime, query).rows[0]
            except Exception as exc:
                log.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            log.slowest = max(log.slowest, time.perf_counter() - started)
            version = row[0]
            if row != expected(version):
                log.mixed.append(row)
            log.backwards += version < last
            last = max(last, version)
            log.versions[version] += 1
            time.sleep(0.005)  # leaves the refresh thread some of the GIL on a small machine

    def refresh_back_to_back() -> None:
        try:
            while not stop.is_set():
                version = refreshes[-1] + 1
                write_version(source, version)
                refresh_table_now(reader_world.runtime, conn_id, source.schema, "t")
                refreshes.append(version)
        except BaseException as exc:
            failures.append(exc)

    def clean_up() -> None:
        try:
            while not stop.wait(0.2):
                deleted.extend(delete_due_files(reader_world.runtime).deleted)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=read, args=(log,)) for log in logs]
    threads += [threading.Thread(target=refresh_back_to_back), threading.Thread(target=clean_up)]
    for thread in threads:
        thread.start()
    time.sleep(stress_seconds())
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hangs"

    seen: Counter[int] = sum((log.versions for log in logs), Counter())
    errors = [e for log in logs for e in log.errors]
    mixed = [row for log in logs for row in log.mixed]
    slowest = max(log.slowest for log in logs)
    print(
        f"\n[readers] {stress_seconds():g} s: {len(refreshes) - 1} refreshes, "
        f"{sum(seen.values())} queries by {READERS} threads, {len(seen)} versions seen, "
        f"{len(errors)} errors, {len(mixed)} mixed results, "
        f"{sum(log.backwards for log in logs)} went backwards, "
        f"slowest query {slowest * 1000:.0f} ms, "
        f"{len(deleted)} old files deleted during the run (grace {GRACE_SECONDS:g} s)"
    )
    assert failures == []
    assert errors == []
    assert mixed == []
    assert all(log.backwards == 0 for log in logs)
    assert slowest < GRACE_SECONDS
    assert len(refreshes) > 2 and len(seen) > 2 and deleted
    assert_nothing_leaks(cache_state(reader_world.runtime))


def test_twenty_concurrent_refreshes_and_a_schema_refresh_leave_one_live_file(
    writer_world: World,
) -> None:
    source = writer_world.source
    create_numbered_table(source, "t", 2_000)
    conn_id = writer_world.register()
    refresh_connection_schema(writer_world.runtime, conn_id)
    create_numbered_table(source, "added_meanwhile", 10)  # the schema refresh has work to do
    ensure_connection_limit(conn_id, writer_world.runtime.settings.refresh_concurrency)
    start = threading.Barrier(21)
    errors: list[str] = []
    schema_results: list[int] = []

    def refresh() -> None:
        start.wait()
        try:
            refresh_table_now(writer_world.runtime, conn_id, source.schema, "t")
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    def refresh_schema() -> None:
        start.wait()
        try:
            for _ in range(3):
                schema_results.append(
                    refresh_connection_schema(writer_world.runtime, conn_id).tables_discovered
                )
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=refresh) for _ in range(20)]
    threads.append(threading.Thread(target=refresh_schema))
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.perf_counter() - started
    assert not any(thread.is_alive() for thread in threads), "deadlock: a refresh never finished"

    state = cache_state(writer_world.runtime)
    live = writer_world.catalog.get_table(conn_id, source.schema, "t").parquet_path
    queued = [d.path for d in writer_world.catalog.list_deletions()]
    print(
        f"\n[writers] 20 data refreshes + 3 schema refreshes in {elapsed:.1f} s: "
        f"{len(errors)} errors, {len(state.files)} files written, 1 live, "
        f"{len(queued)} scheduled ({len(set(queued))} distinct)"
    )
    assert not [e for e in errors if "database is locked" in e]
    assert errors == []
    assert schema_results == [2, 2, 2]
    assert live is not None and state.referenced == {live}
    assert len(state.files) == 20
    assert len(queued) == len(set(queued)) == 19
    assert set(queued) == state.files - {live}
    assert_nothing_leaks(state)
