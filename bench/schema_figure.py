"""Schema refresh of a connection with many tables: its time, and its catalog statements."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import Engine, event

from bench.data import fill_postgres_many_tables
from bench.report import Figure, seconds
from bench.sizes import Sizes
from bench.world import World

TARGET_SECONDS = 5.0


def schema_figures(world: World, sizes: Sizes) -> list[Figure]:
    large, small = sizes.schema_tables
    with ExitStack() as stack:
        measured = {
            tables: _measure(
                world, stack.enter_context(world.pg.database(f"t{tables}")), tables, sizes.repeat
            )
            for tables in (large, small)
        }
    (large_time, large_count), (_, small_count) = measured[large], measured[small]
    return [
        Figure(
            f"schema refresh of {large:,} tables (flow `refresh_schema`)",
            seconds(large_time),
            "—",
            "—",
            f"≤ {TARGET_SECONDS:.0f} s",
            large_time <= TARGET_SECONDS,
        ),
        Figure(
            f"catalog statements of that schema refresh, {large:,} vs {small:,} tables",
            f"{large_count} statements",
            f"{small:,} tables: {small_count} statements",
            f"{large_count / small_count:.2f}x",
            "constant",
            large_count == small_count,
        ),
    ]


def _measure(world: World, database: str, tables: int, repeat: int) -> tuple[float, int]:
    """Median time and statement count of a first schema refresh, on `repeat` connections."""
    from flows.schema import refresh_schema

    fill_postgres_many_tables(world.pg, database, tables)
    times, counts = [], []
    for _ in range(repeat):
        connection_id = world.register("postgres", world.pg.source_config(database), discover=False)
        with count_statements(world.runtime.catalog.engine) as statements:
            started = time.perf_counter()
            result = refresh_schema(connection_id=connection_id)
            times.append(time.perf_counter() - started)
        if result["tables_added"] != tables:
            raise RuntimeError(f"schema refresh found {result['tables_added']} of {tables} tables")
        counts.append(len(statements))
    return statistics.median(times), max(counts)


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent to `engine` inside the block (an executemany counts once)."""
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
