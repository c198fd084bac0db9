"""Crashes lose nothing in an incremental table: SIGKILL at each point of an append refresh and
of a compaction leaves the snapshot as it was before, or as it is after, never a gap or a
duplicate; the orphan sweep and cleanup then leave no file behind.

Same machinery as tests/test_reliability_crashes.py: a child process runs the real
`tasks.refresh_table.refresh_table_now` and is stopped at an exact point, then SIGKILLed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.policy import RefreshPolicy
from tasks.concurrency import ensure_connection_limit
from tasks.refresh_table import refresh_table_now
from tasks.schema import refresh_connection_schema
from tests.querying import run_query
from tests.reliability_support import (
    assert_cleanup_leaves_the_live_files,
    reset_connection_limit,
    run_and_kill,
    runtime_env,
)
from tests.world import World, make_world

pytestmark = pytest.mark.long_file(45)

ROWS = 100_000
QUERY = 'SELECT count(*), count(DISTINCT id), sum(id) FROM "src"."public"."t"'

# (label, function, event, occurrence): where the child is stopped.
DELTA_WRITTEN = (
    "delta written, before its swap",
    "catalog.catalog:Catalog.append_delta",
    "call",
    1,
)
# After the delta's row is inserted, before the mark moves and the transaction commits.
INSIDE_DELTA_SWAP = ("inside the delta's swap", "catalog.snapshots:advance_mark", "call", 1)
AFTER_DELTA_SWAP = (
    "right after the delta's swap",
    "catalog.catalog:Catalog.append_delta",
    "return",
    1,
)
DURING_COMPACTION = ("writing the compacted file", "core.compaction:_kept_batches", "call", 1)
# swap_compacted drops the deltas first: the killed transaction must roll back.
INSIDE_COMPACTION_SWAP = (
    "inside the compaction's swap",
    "catalog.snapshots:drop_deltas",
    "call",
    1,
)


def expected(rows: int) -> list[int]:
    return [rows, rows, rows * (rows + 1) // 2]


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite-catalog", "pg-catalog"])
def world(request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world(
        request.param, "postgres", tmp_path, deletion_grace_seconds=0, compact_after_files=2
    ) as world:
        yield world


class Crashes:
    def __init__(self, world: World, connection_id: int) -> None:
        self.world = world
        self.connection_id = connection_id
        self.env = runtime_env(world.runtime.settings, FRESHCACHE_COMPACT_AFTER_FILES="2")
        self.rows = 0
        self.crashes = 0

    def insert(self, count: int) -> None:
        self.world.source.execute(
            f"INSERT INTO public.t SELECT g.i FROM generate_series({self.rows + 1}, "
            f"{self.rows + count}) AS g(i)"
        )
        self.rows += count

    def kill(self, point: tuple[str, str, str, int]) -> None:
        label, target, event, nth = point
        self.crashes += 1
        log = self.world.tmp_path / f"child-{self.crashes}.log"
        args = ["refresh", target, event, str(nth), str(self.connection_id), "public", "t"]
        assert run_and_kill(args, self.env, log) == -signal.SIGKILL
        reset_connection_limit(self.connection_id)
        print(f"[crash] killed {label}")

    def check(self, rows: int, files: int) -> None:
        """The snapshot holds exactly `rows` rows in `files` files, before and after cleanup."""
        runtime = self.world.runtime
        snapshot = runtime.catalog.snapshot(self.connection_id, "public", "t")
        assert len(snapshot.files) == files
        assert run_query(self.world.runtime, QUERY).rows == [expected(rows)]
        cleanup = assert_cleanup_leaves_the_live_files(runtime)
        assert run_query(self.world.runtime, QUERY).rows == [expected(rows)]
        print(f"        {rows} rows in {files} file(s); {cleanup}")

    def refresh_in_process(self) -> None:
        ensure_connection_limit(self.connection_id, self.world.runtime.settings.refresh_concurrency)
        refresh_table_now(self.world.runtime, self.connection_id, "public", "t")


def test_sigkill_at_each_point_of_an_incremental_refresh_loses_nothing(world: World) -> None:
    world.source.execute("CREATE TABLE public.t (id bigint PRIMARY KEY)")
    conn_id = world.register()
    refresh_connection_schema(world.runtime, conn_id)
    policy = RefreshPolicy(mode="append", cursor_column="id")  # type: ignore[arg-type]
    world.catalog.set_table_policy(conn_id, "public", "t", policy.to_json())
    run = Crashes(world, conn_id)
    run.insert(ROWS)
    run.refresh_in_process()
    run.check(ROWS, files=1)

    # A delta: the snapshot is the base alone, or the base and the whole delta.
    run.insert(1_000)
    run.kill(DELTA_WRITTEN)
    run.check(ROWS, files=1)
    run.kill(INSIDE_DELTA_SWAP)
    run.check(ROWS, files=1)
    run.kill(AFTER_DELTA_SWAP)
    run.check(ROWS + 1_000, files=2)

    # The next delta makes three files, past the limit of two: a compaction follows it.
    run.insert(500)
    run.kill(DURING_COMPACTION)
    run.check(ROWS + 1_500, files=3)
    run.kill(INSIDE_COMPACTION_SWAP)
    run.check(ROWS + 1_500, files=3)
    run.refresh_in_process()  # nothing new; compacts
    run.check(ROWS + 1_500, files=1)
