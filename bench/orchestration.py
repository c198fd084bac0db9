"""What the flows add: many tiny tables, and tables that are slow at the source, in parallel."""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context

from bench.client import timed_posts
from bench.data import fill_postgres_slow_views, make_duckdb_tiny_tables
from bench.process import Run, in_turns, timed_run
from bench.report import Figure, seconds
from bench.sizes import Sizes
from bench.world import World
from catalog.records import TableRecord
from runtime.container import Runtime

OVERHEAD_TARGET_MS = 10


def tiny_tables_figure(world: World, sizes: Sizes) -> Figure:
    """`POST /refresh` of a connection of tiny tables against a plain pool doing the same."""
    source = world.tmp / "tiny.duckdb"
    make_duckdb_tiny_tables(source, sizes.tiny_tables)
    connection_id = world.register("duckdb", {"path": str(source)})
    tables = world.runtime.catalog.list_tables(connection_id)
    threads = max(min(world.concurrency, len(tables)), 1)
    body = {"connection_id": connection_id, "data": True}

    def post_refresh() -> Run:
        [(elapsed, answer)] = timed_posts(world.api(), "/refresh", body, 1)
        if answer["tables_refreshed"] != len(tables):
            raise RuntimeError(f"connection refresh did not refresh every table: {answer}")
        return Run(elapsed, 0.0, 0.0)

    plain_run, posted_run = in_turns(
        sizes.repeat,
        timed_run(lambda: _plain_pool(world.runtime, connection_id, tables, threads)),
        post_refresh,
    )
    plain, posted = plain_run.seconds, posted_run.seconds
    added_ms = (posted - plain) / len(tables) * 1000
    return Figure(
        f"`POST /refresh` of a connection of {len(tables)} tiny tables (limit {world.concurrency})",
        seconds(posted),
        f"`refresh_table_now` x {len(tables)} on {threads} threads, slots kept as the run"
        f" keeps them: {seconds(plain)}",
        f"{added_ms:+.1f} ms/table",
        f"≤ {OVERHEAD_TARGET_MS} ms/table added",
        added_ms <= OVERHEAD_TARGET_MS,
    )


def _plain_pool(
    runtime: Runtime, connection_id: int, tables: list[TableRecord], threads: int
) -> None:
    """The connection refresh without Prefect runs: `threads` threads calling the plain
    function, each fetch holding a slot of the connection's limit as the run's do (kept from
    table to table), through one API client shared as a flow run shares its own."""
    from prefect.context import SyncClientContext

    from tasks.concurrency import slots_kept_by_run
    from tasks.refresh_table import refresh_table_now

    with SyncClientContext(), slots_kept_by_run(), ThreadPoolExecutor(threads) as pool:
        futures = [
            pool.submit(
                copy_context().run,
                refresh_table_now,
                runtime,
                connection_id,
                table.schema_name,
                table.table_name,
            )
            for table in tables
        ]
        for future in futures:
            future.result()


def slow_tables_figure(world: World, sizes: Sizes, database: str) -> Figure:
    fill_postgres_slow_views(world.pg, database, sizes.slow_tables, sizes.slow_seconds)
    connection_id = world.register("postgres", world.pg.source_config(database))
    body = {"connection_id": connection_id, "data": True}
    answers = timed_posts(world.api(), "/refresh", body, sizes.repeat)
    for _, answer in answers:
        if answer["tables_refreshed"] != sizes.slow_tables:
            raise RuntimeError(f"connection refresh did not refresh every table: {answer}")
    flow = statistics.median(t for t, _ in answers)
    limit = world.concurrency
    ideal = sizes.slow_tables / limit * sizes.slow_seconds
    return Figure(
        f"`POST /refresh` of a connection of {sizes.slow_tables} tables taking "
        f"{sizes.slow_seconds} s at the source, limit {limit}",
        seconds(flow),
        f"ideal {sizes.slow_tables}/{limit} x {sizes.slow_seconds} s: {seconds(ideal)}",
        f"{flow / ideal:.2f}x",
        "≤ 1.3x",
        flow / ideal <= 1.3,
    )
