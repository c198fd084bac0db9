"""Cleanup: due deletions, referenced paths, failing deletes, restarts and the orphan sweep."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from flows.cleanup import cleanup
from storage.naming import is_temporary, temporary_name
from tests.hostile_support import all_files, pg_admin
from tests.world import World, make_world


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world(request.param, "duckdb", tmp_path) as w:
        yield w


def write_file(world: World, table: str, age_seconds: float = 0) -> str:
    path = world.storage.new_version_path(1, "main", table)
    data = pa.table({"id": [1, 2, 3]})
    world.storage.write_parquet(
        path, pa.RecordBatchReader.from_batches(data.schema, data.to_batches())
    )
    if age_seconds:
        then = time.time() - age_seconds
        os.utime(path, (then, then))
    return path


def test_deletes_due_files_and_leaves_the_rest(world: World) -> None:
    now = world.catalog.clock()
    due, later = write_file(world, "due"), write_file(world, "later")
    world.catalog.schedule_deletions([due], now - timedelta(seconds=1))
    world.catalog.schedule_deletions([later], now + timedelta(hours=1))
    result = cleanup()
    assert result["deleted"] == [due]
    assert not world.storage.filesystem.exists(due)
    assert world.storage.filesystem.exists(later)
    assert [d.path for d in world.catalog.list_deletions()] == [later]


def test_never_deletes_a_referenced_path(world: World) -> None:
    from catalog import DiscoveredTable

    conn = world.catalog.add_connection("c", "duckdb", {"path": "/x"})
    world.catalog.sync_tables(
        conn.id, [DiscoveredTable("main", "t", "{}")], delete_after=world.catalog.clock()
    )
    live = write_file(world, "t")
    now = world.catalog.clock()
    world.catalog.swap(conn.id, "main", "t", live, snapshot_started_at=now, delete_after=now)
    world.catalog.schedule_deletions([live], world.catalog.clock() - timedelta(seconds=1))
    result = cleanup()
    assert result["released"] == [live] and result["deleted"] == []
    assert world.storage.filesystem.exists(live)
    assert world.catalog.list_deletions() == []


def test_a_failing_delete_is_counted_kept_and_retried(world: World) -> None:
    # A directory where a file is expected: removing it fails like a permission error would.
    blocked = world.storage.new_version_path(1, "main", "blocked")
    Path(blocked).mkdir(parents=True)
    (Path(blocked) / "inside").write_text("x")
    world.catalog.schedule_deletions([blocked], world.catalog.clock() - timedelta(seconds=1))
    for attempt in (1, 2):
        result = cleanup()
        assert [f["path"] for f in result["failed"]] == [blocked]
        (pending,) = world.catalog.list_deletions()
        assert pending.attempts == attempt and pending.last_error
    (Path(blocked) / "inside").unlink()
    Path(blocked).rmdir()
    Path(blocked).write_bytes(b"now a file")
    assert cleanup()["deleted"] == [blocked]
    assert world.catalog.list_deletions() == []


def test_the_deletions_command_lists_what_waits_and_why(world: World) -> None:
    blocked = world.storage.new_version_path(1, "main", "blocked")
    Path(blocked, "inside").mkdir(parents=True)  # a directory: deleting it fails
    later = write_file(world, "later")
    now = world.catalog.clock()
    world.catalog.schedule_deletions([blocked], now - timedelta(seconds=1))
    world.catalog.schedule_deletions([later], now + timedelta(hours=1))
    cleanup()
    settings = world.runtime.settings
    env = {
        **os.environ,
        "FRESHCACHE_DATA_DIR": str(settings.data_dir),
        "FRESHCACHE_CATALOG_URL": settings.resolved_catalog_url,
    }
    listed = subprocess.run(
        [sys.executable, "-m", "app.cli", "deletions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.splitlines()

    due = (now + timedelta(hours=1)).isoformat(timespec="seconds")
    assert listed[0] == "2 cache files queued for deletion"
    assert f"  {later}: due {due}" in listed
    (failing,) = [line for line in listed if line.startswith(f"  {blocked}: due ")]
    assert ", 1 failed attempts: " in failing


def test_orphan_sweep_schedules_old_unreferenced_files_only(world: World) -> None:
    old_orphan = write_file(world, "old", age_seconds=7200)
    young = write_file(world, "young")
    result = cleanup(orphan_min_age_seconds=3600)
    assert result["orphans_scheduled"] == [old_orphan]
    assert result["deleted"] == [old_orphan]
    assert world.cache_files() == {young}


@pytest.fixture(params=["sqlite", "postgresql"])
def pg_world(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[World]:
    with make_world(request.param, "postgres", tmp_path) as w:
        yield w


GATE = 4242  # the advisory lock a source row waits on: held by the test, the fetch stalls


def _stalling_view(world: World) -> None:
    """A view whose 3,000th row waits for the advisory lock GATE; `knob` sets its row count."""
    world.source.execute(
        "CREATE TABLE knob (n int)",
        "INSERT INTO knob VALUES (10)",
        "CREATE FUNCTION gate(i int) RETURNS int LANGUAGE plpgsql VOLATILE AS $$ BEGIN "
        f"IF i = 3000 THEN PERFORM pg_advisory_lock_shared({GATE}); "
        f"PERFORM pg_advisory_unlock_shared({GATE}); END IF; RETURN i; END $$",
        "CREATE VIEW stalls AS SELECT gate(g.i) AS id "
        "FROM generate_series(1, (SELECT n FROM knob)) AS g(i)",
    )


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def test_the_sweep_never_touches_a_file_being_written(pg_world: World) -> None:
    """A refresh stalls mid-stream (its source waits on a lock) while the sweep runs with a
    safety age of 0: its temporary survives, nothing sees it, and the refresh completes."""
    from tasks.concurrency import ensure_connection_limit
    from tasks.refresh_table import refresh_table_now
    from tasks.schema import refresh_connection_schema
    from tests.querying import run_query

    world = pg_world
    _stalling_view(world)
    conn_id = world.register()
    refresh_connection_schema(world.runtime, conn_id)
    ensure_connection_limit(conn_id, world.runtime.settings.refresh_concurrency)
    refresh_table_now(world.runtime, conn_id, "public", "stalls")
    live = world.catalog.get_table(conn_id, "public", "stalls").parquet_path
    world.source.execute("UPDATE knob SET n = 5000")
    query = 'SELECT count(*) FROM "src"."public"."stalls"'

    admin = pg_admin(world.source.database)  # type: ignore[attr-defined]
    admin.execute("SELECT pg_advisory_lock(%s)", (GATE,))
    results: list[Any] = []
    refresh = threading.Thread(
        target=lambda: results.append(refresh_table_now(world.runtime, conn_id, "public", "stalls"))
    )
    refresh.start()
    try:
        waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        _wait_for(lambda: admin.execute(waiting).fetchone() == (1,), "the fetch to stall")
        (temporary,) = temporaries(world)

        result = cleanup(orphan_min_age_seconds=0)
        assert result["temporaries_removed"] == [] and result["orphans_scheduled"] == []
        assert os.path.exists(temporary)
        assert world.cache_files() == {live}
        assert run_query(world.runtime, query).rows == [[10]]
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s)", (GATE,))
        admin.close()
        refresh.join()
    (done,) = results
    assert done.rows_synced == 5000
    assert run_query(world.runtime, query).rows == [[5000]]
    new = world.catalog.get_table(conn_id, "public", "stalls").parquet_path
    assert world.cache_files() == {live, new} and temporaries(world) == []


def temporaries(world: World) -> list[str]:
    return [p for p in all_files(world.storage.root) if is_temporary(p)]


def test_the_sweep_removes_abandoned_temporaries_older_than_the_safety_age(world: World) -> None:
    """A temporary nobody holds is what a crashed writer leaves (tests/test_reliability_crashes.py
    makes real ones): removed once older than the safety age, with no catalog entry."""
    old, young = (
        temporary_name(world.storage.new_version_path(1, "main", name)) for name in ("old", "young")
    )
    for path in (old, young):
        Path(path).parent.mkdir(parents=True)
        Path(path).write_bytes(b"PAR1 half a file")
    then = time.time() - 7200
    os.utime(old, (then, then))
    result = cleanup(orphan_min_age_seconds=3600)
    assert result["temporaries_removed"] == [old]
    assert result["orphans_scheduled"] == [] and result["deleted"] == []
    assert temporaries(world) == [young]
    assert world.catalog.list_deletions() == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_due_deletions_are_processed_when_the_service_starts(
    tmp_path: Path, catalog_url: str
) -> None:
    from catalog import Catalog
    from storage import CacheStorage

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    catalog = Catalog.from_url(catalog_url)
    storage = CacheStorage(str(data_dir / "cache"))
    path = storage.new_version_path(1, "main", "t")
    data = pa.table({"id": [1]})
    storage.write_parquet(path, pa.RecordBatchReader.from_batches(data.schema, data.to_batches()))
    catalog.schedule_deletions([path], catalog.clock() - timedelta(seconds=1))
    catalog.dispose()

    env = {
        **os.environ,
        "FRESHCACHE_DATA_DIR": str(data_dir),
        "FRESHCACHE_CATALOG_URL": catalog_url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "api", "--port", str(free_port())],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "startup cleanup" not in line:
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                break
        assert "startup cleanup deleted 1 files" in line, line
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert not storage.filesystem.exists(path)
    catalog = Catalog.from_url(catalog_url)
    assert catalog.list_deletions() == []
    catalog.dispose()
