"""Incremental tables: an append refresh against a full one, a query over many delta files
against the compacted file, and the freshness flow's decision over many tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import timedelta

from bench.data import TABLE, table_sql
from bench.report import Figure, seconds
from bench.sizes import Sizes
from bench.world import World

APPEND_TARGET = 0.05  # of the full refresh's time
QUERY_TARGET = 1.5  # times the query over the compacted file
PLAN_TARGET_SECONDS = 1.0
QUERY = (
    "SELECT tag, count(*), sum(qty), max(created), min(day) FROM {table} "
    "WHERE flag GROUP BY tag ORDER BY tag"
)


def incremental_figures(world: World, sizes: Sizes, database: str) -> list[Figure]:
    connection_id = _append_table(world, sizes, database)
    return [
        _append_figure(world, sizes, database, connection_id),
        _query_figure(world, sizes, database, connection_id),
        _plan_figure(world, sizes),
    ]


def _append_table(world: World, sizes: Sizes, database: str) -> int:
    """The bench table with a primary key on id, registered with an append policy on id."""
    from core.policy import RefreshMode, RefreshPolicy

    with world.pg.connect(database) as conn:
        conn.execute(table_sql(TABLE, sizes.rows, "generate_series(1, {rows}) AS s(i)"))
        conn.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)")
        conn.execute(f"VACUUM ANALYZE {TABLE}")
    connection_id = world.register("postgres", world.pg.source_config(database))
    policy = RefreshPolicy(mode=RefreshMode.APPEND, cursor_column="id")
    world.runtime.catalog.set_table_policy(connection_id, "public", TABLE, policy.to_json())
    return connection_id


def _insert(world: World, database: str, count: int) -> None:
    """`count` new rows at the end of the table, as the bench SQL makes them."""
    with world.pg.connect(database) as conn:
        first = conn.execute(f"SELECT max(id) + 1 FROM {TABLE}").fetchone()
        assert first is not None and isinstance(first[0], int)
        start = first[0]
        series = f"generate_series({start}, {start + count - 1}) AS s(i)"
        select = table_sql("unused", count, series).removeprefix("CREATE TABLE unused AS ")
        conn.execute(f"INSERT INTO {TABLE} {select}")
        # Settled as the rows of a live table are (hint bits set, statistics current), so the
        # first read after the insert does not pay PostgreSQL's own bookkeeping of new rows.
        conn.execute(f"VACUUM ANALYZE {TABLE}")


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _append_figure(world: World, sizes: Sizes, database: str, connection_id: int) -> Figure:
    from tasks.refresh_table import refresh_table_now

    new_rows = sizes.rows // 100
    full_times, append_times = [], []
    for _ in range(sizes.repeat):
        full_times.append(
            _timed(
                lambda: refresh_table_now(world.runtime, connection_id, "public", TABLE, full=True)
            )
        )
        _insert(world, database, new_rows)
        started = time.perf_counter()
        result = refresh_table_now(world.runtime, connection_id, "public", TABLE)
        append_times.append(time.perf_counter() - started)
        assert (result.incremental, result.rows_synced) == (True, new_rows), result
    full, append = statistics.median(full_times), statistics.median(append_times)
    return Figure(
        f"append refresh of 1% new rows ({new_rows:,}) of a {sizes.rows:,}-row PostgreSQL table",
        seconds(append),
        f"full refresh of the same table: {seconds(full)}",
        f"{append / full:.1%}",
        f"≤ {APPEND_TARGET:.0%}",
        append <= APPEND_TARGET * full,
    )


def _query_figure(world: World, sizes: Sizes, database: str, connection_id: int) -> Figure:
    from core.compaction import compact
    from query import run_query
    from tasks.refresh_table import fetch_for_query, refresh_table_now

    catalog = world.runtime.catalog
    refresh_table_now(world.runtime, connection_id, "public", TABLE, full=True)
    for _ in range(sizes.delta_files):
        _insert(world, database, 1_000)
        refresh_table_now(world.runtime, connection_id, "public", TABLE)
    snapshot = catalog.snapshot(connection_id, "public", TABLE)
    assert len(snapshot.files) == sizes.delta_files + 1, "compacted before the measurement"
    name = catalog.get_connection(connection_id).name
    sql = QUERY.format(table=f'"{name}"."public"."{TABLE}"')

    def query() -> object:
        return run_query(sql, runtime=world.runtime, fetch=fetch_for_query).rows

    def median_query() -> tuple[float, object]:
        answer = query()  # the first run warms the file system cache
        return statistics.median(_timed(query) for _ in range(5)), answer

    many, many_answer = median_query()
    compact(catalog, world.runtime.storage, snapshot, connection_name=name, grace=timedelta(0))
    assert len(catalog.snapshot(connection_id, "public", TABLE).files) == 1
    one, one_answer = median_query()
    assert many_answer == one_answer, "compaction changed the table's rows"
    return Figure(
        f"query over 1 base + {sizes.delta_files} delta files (append table)",
        seconds(many),
        f"the compacted file: {seconds(one)}",
        f"{many / one:.2f}x",
        f"≤ {QUERY_TARGET}x",
        many <= QUERY_TARGET * one,
    )


def _plan_figure(world: World, sizes: Sizes) -> Figure:
    """The freshness flow's decision (statuses, plan, next run) over a catalog of many tables."""
    from catalog import Catalog, DiscoveredTable
    from core.freshness import next_run_at, plan_freshness, table_statuses
    from core.policy import RefreshPolicy
    from orchestration.freshness_runs import BUCKET_SECONDS

    tables = sizes.freshness_tables
    catalog = Catalog.from_url(f"sqlite:///{world.tmp / 'freshness-catalog.db'}")
    try:
        conn_id = catalog.add_connection("many", "duckdb", {"path": "/x.duckdb"}).id
        schema = '[{"name":"id","nullable":false,"type":"int64"}]'
        names = [f"t_{n:05d}" for n in range(tables)]
        catalog.sync_tables(
            conn_id,
            [DiscoveredTable("public", n, schema) for n in names],
            delete_after=catalog.clock(),
        )
        catalog.set_connection_policy(conn_id, RefreshPolicy(max_staleness_seconds=600).to_json())
        now = catalog.clock()
        for n, name in enumerate(names):
            if n % 10:  # one table in ten was never synced
                at = now - timedelta(seconds=n % 900)
                catalog.swap(
                    conn_id, "public", name, f"/c/{name}.parquet",
                    snapshot_started_at=at, delete_after=at, synced_at=at,
                )  # fmt: skip
            if n % 7 == 0:  # and some have a target of their own
                own = RefreshPolicy(max_staleness_seconds=60 + n % 300)
                catalog.set_table_policy(conn_id, "public", name, own.to_json())

        def decide() -> None:
            at = catalog.clock()
            statuses = table_statuses(catalog, at)
            plan_freshness(statuses, at, 30, BUCKET_SECONDS)  # as the flow plans
            next_run_at(statuses, at, 30)

        measured = statistics.median(_timed(decide) for _ in range(sizes.repeat))
    finally:
        catalog.dispose()
    return Figure(
        f"freshness flow deciding over {tables:,} tables with targets",
        seconds(measured),
        "—",
        "—",
        f"≤ {PLAN_TARGET_SECONDS:.0f} s",
        measured <= PLAN_TARGET_SECONDS,
    )
