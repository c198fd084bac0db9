"""`python -m bench [--quick]`: measure every figure of the benchmark and print one table.

Progress goes to stderr; the table (with the date and machine) to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from bench.data import Postgres
from bench.report import Figure, render
from bench.sizes import FULL, QUICK, Sizes
from bench.world import bench_world, quiet_environment


def parse_sizes(argv: list[str] | None) -> tuple[Sizes, Postgres, str, str, list[str] | None]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, one run each (CI)")
    parser.add_argument("--rows", type=int, help="rows of the fetch table")
    parser.add_argument("--repeat", type=int, help="runs per measurement (the median is shown)")
    parser.add_argument("--pg-host", default="127.0.0.1")
    parser.add_argument("--pg-port", type=int, default=5432)
    parser.add_argument("--pg-user", default="postgres")
    parser.add_argument(
        "--prefect-db",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="the Prefect server's database (default: PostgreSQL, as in production)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="STEP",
        help="measure only this step (by its label, e.g. 'tiny tables'; may be repeated)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    overrides = {k: v for k, v in (("rows", args.rows), ("repeat", args.repeat)) if v}
    sizes = dataclasses.replace(sizes, **overrides)
    mode = (
        f"{'quick' if args.quick else 'full'}, median of {sizes.repeat}, "
        f"Prefect server on {args.prefect_db}"
    )
    if args.only:
        mode += f", only {', '.join(args.only)}"
    pg = Postgres(args.pg_host, args.pg_port, args.pg_user)
    return sizes, pg, args.prefect_db, mode, args.only


def main(argv: list[str] | None = None) -> None:
    sizes, pg, prefect_db, mode, only = parse_sizes(argv)
    quiet_environment()
    from bench.cleanup_figure import cleanup_figure
    from bench.fetch_figures import duckdb_figures, postgres_figures
    from bench.incremental_figure import incremental_figures
    from bench.orchestration import slow_tables_figure, tiny_tables_figure
    from bench.paths import deployment_figure, inline_figures
    from bench.query_figures import query_figures
    from bench.schema_figure import schema_figures
    from bench.webhook_figure import webhook_figure

    figures: list[Figure] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fc-bench-")))
        world = stack.enter_context(bench_world(tmp, pg, prefect_db))
        rows_db = stack.enter_context(pg.database("rows"))
        slow_db = stack.enter_context(pg.database("slow"))
        incremental_db = stack.enter_context(pg.database("incremental"))
        steps: list[tuple[str, Callable[[], list[Figure]]]] = [
            ("inline refresh and first query", lambda: inline_figures(world, sizes)),
            ("DuckDB fetch", lambda: duckdb_figures(world, sizes)),
            ("PostgreSQL fetch", lambda: postgres_figures(world, sizes, rows_db)),
            ("tiny tables", lambda: [tiny_tables_figure(world, sizes)]),
            ("slow tables", lambda: [slow_tables_figure(world, sizes, slow_db)]),
            ("schema refresh", lambda: schema_figures(world, sizes)),
            ("webhook", lambda: [webhook_figure(sizes)]),
            ("query", lambda: query_figures(world, sizes)),
            ("cleanup", lambda: [cleanup_figure(world, sizes)]),
            ("incremental", lambda: incremental_figures(world, sizes, incremental_db)),
            # Last: its deployments' schedules stay on the bench's Prefect server after it stops.
            ("deployment mode", lambda: [deployment_figure(world, sizes)]),
        ]
        unknown = set(only or ()) - {label for label, _ in steps}
        if unknown:
            raise SystemExit(f"no such bench step: {', '.join(sorted(unknown))}")
        for label, step in steps:
            if only and label not in only:
                continue
            started = time.perf_counter()
            print(f"bench: {label}...", file=sys.stderr, flush=True)
            try:
                measured = step()
            except Exception as exc:  # the other figures are still worth printing
                failure = f"failed: {type(exc).__name__}: {exc}"
                measured = [Figure(label, failure, "", "", "", False)]
            for figure in measured:
                print(f"bench:   {figure}", file=sys.stderr, flush=True)
            figures += measured
            print(f"bench: {label} took {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(render(figures, mode))


if __name__ == "__main__":
    main()
