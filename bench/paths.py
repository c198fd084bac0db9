"""The paths a user takes, end to end over HTTP: `POST /refresh` of a small table (inline, and
through `freshcache up` in deployment mode) and the first query of an uncached table.

Each latency is the median of `latency_repeat` requests after one warm-up request (a process's
first run imports and connects what the later ones reuse).
"""

from __future__ import annotations

import multiprocessing
import statistics
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

import duckdb

from app.warm_runs import PRELOAD
from bench.client import Address, address_of, expect, post, timed, timed_posts
from bench.data import table_sql
from bench.process import ROOT, serve_stack
from bench.report import Figure, added_seconds, seconds
from bench.sizes import Sizes
from bench.world import World
from runtime.container import Runtime

SMALL_ROWS = 100
FIRST_QUERY_ROWS = 10_000
INLINE_TARGET_SECONDS = 0.3
DEPLOYMENT_TARGET_SECONDS = 2.0
FIRST_QUERY_TARGET_SECONDS = 0.5
RECORDED_WAIT_SECONDS = 30.0
# What a flow run's process imports before the flow starts, when it is a new interpreter (as
# prefect's runner starts it) instead of a fork of the warm process (app/warm_runs.py).
FLOW_PROCESS_IMPORTS = "import prefect.flow_engine, flows.refresh"
SERIES = "range(1, {rows} + 1) AS s(i)"


def inline_figures(world: World, sizes: Sizes) -> list[Figure]:
    """`POST /refresh` of a 100-row table and first queries, against the bench's `freshcache
    api` (inline)."""
    source = world.tmp / "paths.duckdb"
    first_tables = [f"first_{n:02d}" for n in range(sizes.latency_repeat + 1)]
    with closing(duckdb.connect(str(source))) as con:
        con.execute(table_sql("hundred", SMALL_ROWS, SERIES))
        for name in first_tables:
            con.execute(table_sql(name, FIRST_QUERY_ROWS, SERIES))
    connection_id = world.register("duckdb", {"path": str(source)})
    name = world.runtime.catalog.get_connection(connection_id).name
    plain = _plain_refreshes(world.runtime, connection_id, "hundred", sizes.latency_repeat)
    body = _table_body(connection_id, "hundred")
    address = world.api()
    timed_posts(address, "/refresh", body, 1)  # the warm-up
    since = datetime.now(UTC)
    posted = [t for t, _ in timed_posts(address, "/refresh", body, sizes.latency_repeat)]
    _check_recorded(since, sizes.latency_repeat)
    queries = [f'SELECT count(*) FROM "{name}"."main"."{table}"' for table in first_tables]
    first = [_timed_query(address, sql) for sql in queries][1:]
    cached = [_timed_query(address, sql) for sql in queries][1:]
    refresh, plain_median = statistics.median(posted), statistics.median(plain)
    first_median, cached_median = statistics.median(first), statistics.median(cached)
    return [
        Figure(
            f"`POST /refresh` of a {SMALL_ROWS}-row table, inline (its flow run and task run "
            "checked in the Prefect API)",
            seconds(refresh),
            f"`refresh_table_now` in this process: {seconds(plain_median)}",
            added_seconds(refresh - plain_median),
            f"≤ {INLINE_TARGET_SECONDS} s",
            refresh <= INLINE_TARGET_SECONDS,
        ),
        Figure(
            f"first `POST /query` of an uncached {FIRST_QUERY_ROWS:,}-row table (lazy fetch)",
            seconds(first_median),
            f"the same query once cached: {seconds(cached_median)}",
            added_seconds(first_median - cached_median),
            f"≤ {FIRST_QUERY_TARGET_SECONDS} s",
            first_median <= FIRST_QUERY_TARGET_SECONDS,
        ),
    ]


def deployment_figure(world: World, sizes: Sizes) -> Figure:
    """`POST /refresh` of a 100-row table through `freshcache up`, against the floor: a flow
    run's process forked from a warm process that has its imports, as the stack starts it (and,
    for scale, a new interpreter importing them)."""
    source = world.tmp / "deployment.duckdb"
    with closing(duckdb.connect(str(source))) as con:
        con.execute(table_sql("hundred", SMALL_ROWS, SERIES))
    connection_id = world.register("duckdb", {"path": str(source)})
    body = _table_body(connection_id, "hundred")
    workdir = world.tmp / "up"
    workdir.mkdir()
    posted, floors = [], []
    warm = multiprocessing.get_context("forkserver")
    warm.set_forkserver_preload(PRELOAD)
    with serve_stack(workdir) as url:
        address = address_of(url)
        # A run that outlasts ?wait= is answered 202, which fails the figure.
        timed_posts(address, "/refresh?wait=60", body, 1)  # the warm-up
        _forked_process_start(warm)  # starts the forkserver
        for _ in range(sizes.latency_repeat):  # in turns: a change of load hits both alike
            posted += [t for t, _ in timed_posts(address, "/refresh?wait=60", body, 1)]
            floors.append(_forked_process_start(warm))
        cold = _new_interpreter_start()
    refresh, floor = statistics.median(posted), statistics.median(floors)
    return Figure(
        f"`POST /refresh` of a {SMALL_ROWS}-row table, deployment mode (`freshcache up`, "
        f"Prefect server on {world.prefect_db})",
        seconds(refresh),
        f"floor, a flow run's process forked from the warm one: {seconds(floor)} (a new "
        f"interpreter with its imports: {seconds(cold)})",
        f"{added_seconds(refresh - floor)} above the floor",
        f"≤ {DEPLOYMENT_TARGET_SECONDS:.0f} s",
        refresh <= DEPLOYMENT_TARGET_SECONDS,
    )


def _table_body(connection_id: int, table: str) -> dict[str, Any]:
    return {
        "connection_id": connection_id,
        "schema_name": "main",
        "table_name": table,
        "data": True,
    }


def _plain_refreshes(runtime: Runtime, connection_id: int, table: str, repeat: int) -> list[float]:
    """The plain function, through one API client (as the webhook's threads keep one), after
    a warm-up."""
    from prefect.context import SyncClientContext

    from tasks.refresh_table import refresh_table_now

    with SyncClientContext():
        times = [
            timed(lambda: refresh_table_now(runtime, connection_id, "main", table))
            for _ in range(repeat + 1)
        ]
    return times[1:]


def _timed_query(address: Address, sql: str) -> float:
    started = time.perf_counter()
    answer = expect(post(address, "/query", {"sql": sql}), 200)
    elapsed = time.perf_counter() - started
    if answer["rows"] != [[FIRST_QUERY_ROWS]]:
        raise RuntimeError(f"{sql} answered {answer['rows']}")
    return elapsed


def _check_recorded(since: datetime, expected: int) -> None:
    """Prefect recorded each refresh: a completed `refresh` flow run started after `since`,
    with its completed `refresh-table` task run (task runs arrive as events: waited for)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterStartTime,
    )

    deadline = time.monotonic() + RECORDED_WAIT_SECONDS
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["refresh"])),
                flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since)),
            )
            ids = [run.id for run in runs if run.state is not None and run.state.is_completed()]
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))
            )
            done = {
                task.flow_run_id
                for task in tasks
                if task.name.startswith("refresh-table")
                and task.state is not None
                and task.state.is_completed()
            }
            if len(ids) == expected and len(done) == expected:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Prefect recorded {len(ids)} completed refresh flow runs of {expected}, "
                    f"{len(done)} with a completed refresh-table task run"
                )
            time.sleep(0.5)


def _forked_process_start(warm: multiprocessing.context.BaseContext) -> float:
    def start_and_join() -> None:
        process = warm.Process(target=_nothing)  # type: ignore[attr-defined]
        process.start()
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a process forked from the warm one exited {process.exitcode}")

    return timed(start_and_join)


def _nothing() -> None:
    """A flow run's process that has nothing to run."""


def _new_interpreter_start() -> float:
    return timed(
        lambda: subprocess.run([sys.executable, "-c", FLOW_PROCESS_IMPORTS], cwd=ROOT, check=True)
    )
