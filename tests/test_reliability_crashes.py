"""Crashes lose nothing: SIGKILL a refreshing process at each point of a table refresh.

The child process builds its Runtime from FRESHCACHE_* variables and runs the real
`tasks.refresh_table.refresh_table_now` (or `core.cleanup.delete_due_files`); a profile hook
stops it at an exact point (see tests/reliability_support.py) and the test SIGKILLs it there.
After every crash the catalog points at a complete file of the expected version (or at none),
queries work, and after the orphan sweep (safety age 0) and cleanup nothing is left over.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.concurrency import ensure_connection_limit
from tasks.refresh_table import refresh_table_now
from tasks.schema import refresh_connection_schema
from tests.querying import run_query
from tests.reliability_support import (
    assert_cleanup_leaves_the_live_files,
    cache_state,
    read_versions,
    reset_connection_limit,
    run_and_kill,
    runtime_env,
)
from tests.source_dbs import SourceDB
from tests.world import World, make_world

pytestmark = pytest.mark.long_file(75)

ROWS = 200_000  # four source batches of 65,536 rows: a fetch has several steps to stop in
QUERY = 'SELECT min(version), max(version), count(*), sum(id) FROM "src"."public"."t"'

# (label, function, event, occurrence): where the child is stopped.
DURING_FETCH = ("during the fetch", "storage.parquet:_RowGroupBuffer.add", "call", 3)
BEFORE_SWAP = ("file written, before the swap", "catalog.catalog:Catalog.swap", "call", 1)
# After the UPDATE, before the COMMIT: the killed transaction must roll back and free its locks.
INSIDE_SWAP = ("inside the swap transaction", "catalog.catalog:Catalog._schedule", "call", 1)
AFTER_SWAP = ("right after the swap", "catalog.catalog:Catalog.swap", "return", 1)
DURING_CLEANUP = ("during cleanup", "storage.cache:CacheStorage.delete", "return", 1)


def rows_of(version: int) -> int:
    return ROWS + version


def expected(version: int) -> tuple[int, int, int, int]:
    rows = rows_of(version)
    return version, version, rows, rows * (rows + 1) // 2


def write_version(source: SourceDB, version: int) -> None:
    """Rewrite the source table: every row carries `version`, and the count tells it too."""
    source.execute(
        "DROP TABLE IF EXISTS public.t",
        f"CREATE TABLE public.t AS SELECT g.i AS id, {version} AS version "
        f"FROM generate_series(1, {rows_of(version)}) AS g(i)",
    )


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite-catalog", "pg-catalog"])
def crash_world(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[World]:
    with make_world(request.param, "postgres", tmp_path, deletion_grace_seconds=0) as world:
        yield world


class CrashRun:
    def __init__(self, world: World, connection_id: int) -> None:
        self.world = world
        self.connection_id = connection_id
        self.env = runtime_env(world.runtime.settings)
        self.crashes = 0

    def kill(self, point: tuple[str, str, str, int], action: str = "refresh") -> None:
        label, target, event, nth = point
        args = [action, target, event, str(nth)]
        if action == "refresh":
            args += [str(self.connection_id), "public", "t"]
        self.crashes += 1
        log = self.world.tmp_path / f"child-{self.crashes}.log"
        assert run_and_kill(args, self.env, log) == -signal.SIGKILL
        slots = reset_connection_limit(self.connection_id)
        state = cache_state(self.world.runtime)
        partial = [
            f"{f.path.rsplit('/', 1)[-1]} ({f.size} B)"
            for f in self.world.storage.list_files()
            if f.path not in state.referenced
        ] + [f"{p.rsplit('/', 1)[-1]} (being written)" for p in state.temporaries]
        print(
            f"[crash] killed {label}: fetch slots still held {slots}, "
            f"files not live {partial or 'none'}"
        )

    def check(self, version: int | None) -> None:
        """The catalog, the files and queries after a crash, before and after the sweep."""
        runtime = self.world.runtime
        table = runtime.catalog.get_table(self.connection_id, "public", "t")
        if version is None:
            assert table.parquet_path is None
        else:
            assert table.parquet_path is not None
            assert read_versions(runtime, table.parquet_path) == expected(version)
        cleanup = assert_cleanup_leaves_the_live_files(runtime)
        print(f"        live version {version}; {cleanup}")
        if version is not None:
            assert run_query(self.world.runtime, QUERY).rows == [list(expected(version))]

    def refresh_in_process(self) -> None:
        ensure_connection_limit(self.connection_id, self.world.runtime.settings.refresh_concurrency)
        refresh_table_now(self.world.runtime, self.connection_id, "public", "t")


def test_sigkill_at_each_point_of_a_refresh_loses_nothing(crash_world: World) -> None:
    source = crash_world.source
    write_version(source, 1)
    conn_id = crash_world.register()
    refresh_connection_schema(crash_world.runtime, conn_id)
    run = CrashRun(crash_world, conn_id)
    print(f"\n[crash] catalog {crash_world.runtime.settings.resolved_catalog_url.split(':')[0]}")

    # Never cached: a crash leaves the table uncached and its partial or orphaned file is swept.
    run.kill(DURING_FETCH)
    assert len(cache_state(crash_world.runtime).temporaries) == 1, "the killed fetch's temporary"
    run.check(None)
    run.kill(BEFORE_SWAP)
    run.check(None)
    assert run_query(crash_world.runtime, QUERY).rows == [
        list(expected(1))
    ]  # lazy caching still works

    # Cached: the swap either happened (new version) or did not (old version).
    write_version(source, 2)
    run.kill(AFTER_SWAP)
    run.check(2)
    write_version(source, 3)
    run.kill(DURING_FETCH)
    run.check(2)
    run.kill(BEFORE_SWAP)
    run.check(2)
    run.kill(INSIDE_SWAP)
    run.check(2)

    # Cleanup killed after deleting a file but before forgetting its pending deletion.
    for _ in range(3):
        run.refresh_in_process()
    queued = cache_state(crash_world.runtime).queued
    assert len(queued) == 3
    run.kill(DURING_CLEANUP, action="cleanup")
    state = cache_state(crash_world.runtime)
    gone = state.queued - state.files
    assert len(gone) == 1, "the killed cleanup deleted exactly one file"
    print(f"        {len(gone)} pending deletion points at a file already deleted")
    run.check(3)
    assert crash_world.catalog.list_deletions() == []
