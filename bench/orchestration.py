"""What the flows add: many tiny tables, and tables that are slow at the source, in parallel."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.data import fill_postgres_slow_views, make_duckdb_tiny_tables
from bench.report import Figure, seconds
from bench.sizes import Sizes
from bench.world import World

OVERHEAD_TARGET_MS = 30


def tiny_tables_figure(world: World, sizes: Sizes) -> Figure:
    from tasks.refresh_table import refresh_table_data

    source = world.tmp / "tiny.duckdb"
    make_duckdb_tiny_tables(source, sizes.tiny_tables)
    connection_id = world.register("duckdb", {"path": str(source)})
    tables = world.runtime.catalog.list_tables(connection_id)

    def loop() -> None:
        for table in tables:
            refresh_table_data(connection_id, table.schema_name, table.table_name)

    plain = _median_seconds(loop, sizes.repeat)
    flow = _median_seconds(lambda: _connection_refresh(connection_id, len(tables)), sizes.repeat)
    added_ms = (flow - plain) / len(tables) * 1000
    return Figure(
        f"connection refresh of {len(tables)} tiny tables (limit {world.concurrency})",
        seconds(flow),
        f"`refresh_table` x {len(tables)} in a loop: {seconds(plain)}",
        f"{added_ms:+.1f} ms/table",
        f"≤ {OVERHEAD_TARGET_MS} ms/table added",
        added_ms <= OVERHEAD_TARGET_MS,
    )


def slow_tables_figure(world: World, sizes: Sizes, database: str) -> Figure:
    fill_postgres_slow_views(world.pg, database, sizes.slow_tables, sizes.slow_seconds)
    connection_id = world.register("postgres", world.pg.source_config(database))
    flow = _median_seconds(
        lambda: _connection_refresh(connection_id, sizes.slow_tables), sizes.repeat
    )
    limit = world.concurrency
    ideal = sizes.slow_tables / limit * sizes.slow_seconds
    return Figure(
        f"connection refresh of {sizes.slow_tables} tables taking {sizes.slow_seconds} s "
        f"at the source, limit {limit}",
        seconds(flow),
        f"ideal {sizes.slow_tables}/{limit} x {sizes.slow_seconds} s: {seconds(ideal)}",
        f"{flow / ideal:.2f}x",
        "≤ 1.3x",
        flow / ideal <= 1.3,
    )


def _connection_refresh(connection_id: int, expected: int) -> None:
    from flows.data import run_connection_data_refresh

    result: dict[str, Any] = run_connection_data_refresh(connection_id)
    if result["tables_refreshed"] != expected:
        raise RuntimeError(f"connection refresh did not refresh every table: {result}")


def _median_seconds(action: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)
