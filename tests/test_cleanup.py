"""Cleanup: due deletions, referenced paths, failing deletes, restarts and the orphan sweep."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from flows.cleanup import cleanup
from tests.world import World, make_world


@pytest.fixture
def world(prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world("sqlite", "duckdb", tmp_path) as w:
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
    assert not world.storage.exists(due)
    assert world.storage.exists(later)
    assert [d.path for d in world.catalog.list_deletions()] == [later]


def test_never_deletes_a_referenced_path(world: World) -> None:
    from catalog import DiscoveredTable

    conn = world.catalog.add_connection("c", "duckdb", {"path": "/x"})
    world.catalog.upsert_tables(conn.id, [DiscoveredTable("main", "t", "{}")])
    live = write_file(world, "t")
    world.catalog.swap(conn.id, "main", "t", live, delete_after=world.catalog.clock())
    world.catalog.schedule_deletions([live], world.catalog.clock() - timedelta(seconds=1))
    result = cleanup()
    assert result["released"] == [live] and result["deleted"] == []
    assert world.storage.exists(live)
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


def test_orphan_sweep_schedules_old_unreferenced_files_only(world: World) -> None:
    old_orphan = write_file(world, "old", age_seconds=7200)
    young = write_file(world, "young")
    result = cleanup(orphan_min_age_seconds=3600)
    assert result["orphans_scheduled"] == [old_orphan]
    assert result["deleted"] == [old_orphan]
    assert world.cache_files() == {young}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_due_deletions_are_processed_when_the_service_starts(tmp_path: Path) -> None:
    from catalog import Catalog
    from storage import CacheStorage

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    catalog = Catalog.from_url(f"sqlite:///{data_dir / 'catalog.db'}")
    storage = CacheStorage(str(data_dir / "cache"))
    path = storage.new_version_path(1, "main", "t")
    data = pa.table({"id": [1]})
    storage.write_parquet(path, pa.RecordBatchReader.from_batches(data.schema, data.to_batches()))
    catalog.schedule_deletions([path], catalog.clock() - timedelta(seconds=1))
    catalog.dispose()

    env = {**os.environ, "FRESHCACHE_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", "api", "--port", str(free_port())],
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
    assert not storage.exists(path)
    assert Catalog.from_url(f"sqlite:///{data_dir / 'catalog.db'}").list_deletions() == []
