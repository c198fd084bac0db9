"""Fetch speed and file size through `POST /refresh` (a `freshcache api` process, inline), against
baselines run in fresh processes, in turns with them; peak memory of refreshes in fresh processes.
Medians of the repeats."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.client import timed_posts
from bench.data import SMALL_TABLE, TABLE, fill_postgres_rows, make_duckdb_rows
from bench.process import Run, in_turns, median_run, run_fresh
from bench.report import Figure, megabytes, seconds
from bench.sizes import Sizes
from bench.world import World

RAW_READERS = ("adbc", "connectorx")
DLT_BACKENDS = ("connectorx", "pyarrow")
MEMORY_CAP_MB = 512


def duckdb_figures(world: World, sizes: Sizes) -> list[Figure]:
    from sources.duckdb_source import COPY_OPTIONS

    source = world.tmp / "rows.duckdb"
    make_duckdb_rows(source, sizes.duckdb_rows)
    connection_id = world.register("duckdb", {"path": str(source)})
    out = str(world.tmp / "duckdb-copy.parquet")
    ours, copy = in_turns(
        sizes.repeat,
        _posted_refresh(world, connection_id, "main", TABLE, sizes.duckdb_rows),
        partial(run_fresh, "duckdb_copy", database=str(source), table=TABLE, out=out),
    )
    options = COPY_OPTIONS.removeprefix("FORMAT parquet, ")
    return [
        _time_ratio(
            f"DuckDB → cache, {sizes.duckdb_rows:,} rows, `POST /refresh`",
            ours,
            f"DuckDB COPY TO ({options})",
            copy,
            1.2,
        ),
        Figure(
            "cache file size, same table",
            megabytes(ours.file_mb),
            f"DuckDB COPY TO: {megabytes(copy.file_mb)}",
            f"{ours.file_mb / copy.file_mb:.2f}x",
            "≤ 1.1x",
            ours.file_mb <= 1.1 * copy.file_mb,
        ),
    ]


def postgres_figures(world: World, sizes: Sizes, database: str) -> list[Figure]:
    pg = world.pg
    fill_postgres_rows(pg, database, sizes.rows, sizes.small_rows)
    connection_id = world.register("postgres", pg.source_config(database))

    def refresh(table: str) -> Run:
        return median_run(
            "ours",
            sizes.repeat,
            connection_id=connection_id,
            schema_name="public",
            table_name=table,
        )

    ours, ours_small = refresh(TABLE), refresh(SMALL_TABLE)
    uri = pg.url(database, driver="postgresql")
    out = str(world.tmp / "baseline.parquet")
    posted, *raw_runs = in_turns(
        sizes.repeat,
        _posted_refresh(world, connection_id, "public", TABLE, sizes.rows),
        *(partial(run_fresh, m, uri=uri, table=TABLE, out=out) for m in RAW_READERS),
    )
    raw = dict(zip(RAW_READERS, raw_runs, strict=True))
    fastest = min(raw, key=lambda m: raw[m].seconds)
    rows = f"{sizes.rows:,} rows"
    figures = [
        _time_ratio(
            f"PostgreSQL → cache, {rows}, `POST /refresh`",
            posted,
            f"raw {fastest} → the cache's Parquet writer",
            raw[fastest],
            1.0,
        )
    ]
    # pandas and dlt come with the `bench` extra; without it their rows are left out.
    if _installed("pandas"):
        figures.append(_pandas_figure(ours, sizes, pg.url(database), world.tmp))
    if _installed("dlt"):
        figures.append(_dlt_figure(ours, sizes, pg.url(database), world.tmp))
    figures.append(
        Figure(
            f"peak RSS, PostgreSQL refresh of {rows} (`refresh_table_now`, fresh process)",
            megabytes(ours.peak_mb),
            f"{sizes.small_rows:,} rows: {megabytes(ours_small.peak_mb)}",
            f"{ours.peak_mb / ours_small.peak_mb:.2f}x",
            f"≤ 1.2x, ≤ {MEMORY_CAP_MB} MB",
            ours.peak_mb <= 1.2 * ours_small.peak_mb and ours.peak_mb <= MEMORY_CAP_MB,
        )
    )
    return figures


def _posted_refresh(
    world: World, connection_id: int, schema_name: str, table_name: str, rows: int
) -> Callable[[], Run]:
    """One `POST /refresh` of the table: its time and its cache file's size (no peak: the
    server's memory is not the refresh's alone)."""
    body = {
        "connection_id": connection_id,
        "schema_name": schema_name,
        "table_name": table_name,
        "data": True,
    }

    def refresh() -> Run:
        [(elapsed, answer)] = timed_posts(world.api(), "/refresh", body, 1)
        if answer["rows_synced"] != rows:
            raise RuntimeError(f"`POST /refresh` synced {answer['rows_synced']} rows, not {rows}")
        table = world.runtime.catalog.get_table(connection_id, schema_name, table_name)
        assert table.parquet_path is not None
        return Run(elapsed, 0.0, Path(table.parquet_path).stat().st_size / 1e6)

    return refresh


def _pandas_figure(ours: Run, sizes: Sizes, url: str, tmp: Path) -> Figure:
    out = str(tmp / "pandas.parquet")
    pandas = median_run("pandas", sizes.repeat, url=url, table=TABLE, out=out)
    speedup = pandas.seconds / ours.seconds
    return Figure(
        "PostgreSQL → cache vs pandas `read_sql` chunks of 50k + Parquet",
        _time_and_peak(ours),
        f"pandas: {_time_and_peak(pandas)}",
        f"{speedup:.1f}x faster",
        "≥ 4x faster",
        speedup >= 4,
    )


def _dlt_figure(ours: Run, sizes: Sizes, url: str, tmp: Path) -> Figure:
    runs = {
        backend: median_run(
            "dlt", sizes.repeat, url=url, table=TABLE, out=str(tmp / "dlt"), backend=backend
        )
        for backend in DLT_BACKENDS
    }
    backend = min(runs, key=lambda b: runs[b].seconds)
    dlt = runs[backend]
    return Figure(
        "PostgreSQL → cache vs dlt `sql_table` → filesystem Parquet",
        _time_and_peak(ours),
        f"dlt ({backend} backend): {_time_and_peak(dlt)}",
        f"{dlt.seconds / ours.seconds:.1f}x faster, {ours.peak_mb / dlt.peak_mb:.2f}x memory",
        "faster, less peak memory",
        ours.seconds < dlt.seconds and ours.peak_mb < dlt.peak_mb,
    )


def _time_ratio(name: str, ours: Run, label: str, baseline: Run, target: float) -> Figure:
    ratio = ours.seconds / baseline.seconds
    return Figure(
        name,
        seconds(ours.seconds),
        f"{label}: {_time_and_peak(baseline)}",
        f"{ratio:.2f}x",
        f"≤ {target}x",
        ratio <= target,
    )


def _installed(package: str) -> bool:
    if importlib.util.find_spec(package) is None:
        message = f"bench: {package} is not installed (pip install -e '.[bench]'): row left out"
        print(message, file=sys.stderr)
        return False
    return True


def _time_and_peak(run: Run) -> str:
    return f"{seconds(run.seconds)}, {megabytes(run.peak_mb)} peak"
