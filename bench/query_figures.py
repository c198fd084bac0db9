"""POST /query under load, against `freshcache api` over HTTP.

- clients running a mix of aggregates over a cached table, against DuckDB's own throughput on
  the same Parquet file, in this process with a cursor per thread (same run);
- the same while runaway clients send queries that only the time limit ends: the aggregates'
  p99, how long each runaway lasts, the server's memory, and a small table's refresh;
- a whole table as an Arrow IPC stream and as JSON: time to read it (pyarrow, json) and size.
"""

from __future__ import annotations

import http.client
import itertools
import json
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field

import duckdb
import psutil
import pyarrow as pa

from bench.client import Address, address_of, expect, post, request, timed
from bench.data import TABLE, table_sql
from bench.process import serve_api
from bench.report import Figure, megabytes, seconds
from bench.sizes import Sizes
from bench.world import World

SMALL = "small"
MIX = [
    "SELECT tag, count(*), sum(qty), avg(price) FROM {t} GROUP BY tag ORDER BY tag",
    "SELECT day, sum(price) AS total FROM {t} WHERE flag GROUP BY day ORDER BY total DESC, day "
    "LIMIT 10",
    "SELECT count(DISTINCT name) FROM {t} WHERE qty < 100",
    "SELECT min(created), max(created), count(ratio), count(*) FROM {t}",
    "SELECT tag, max(price), min(day) FROM {t} WHERE qty BETWEEN 100 AND 300 GROUP BY tag "
    "ORDER BY tag",
]
RUNAWAY = "SELECT sum(a.range * b.range) FROM range(300000) a, range(300000) b"
THROUGHPUT_TARGET = 0.5
MEMORY_BUDGET_MB = 1024
ARROW = "application/vnd.apache.arrow.stream"


@dataclass
class Load:
    """What clients saw: completed queries, their latencies (ms) and failures."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def qps(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.latencies, n=100)[98]


def query_figures(world: World, sizes: Sizes) -> list[Figure]:
    from tasks.refresh_table import refresh_table_now

    source = world.tmp / "query.duckdb"
    with closing(duckdb.connect(str(source))) as con:
        con.execute(table_sql(TABLE, sizes.query_rows, "range(1, {rows} + 1) AS s(i)"))
        con.execute(table_sql(SMALL, 1_000, "range(1, {rows} + 1) AS s(i)"))
    connection_id = world.register("duckdb", {"path": str(source)})
    for table in (TABLE, SMALL):
        refresh_table_now(world.runtime, connection_id, "main", table)
    catalog = world.runtime.catalog
    name = catalog.get_connection(connection_id).name
    path = catalog.get_table(connection_id, "main", TABLE).parquet_path
    assert path is not None
    queries = [q.format(t=f'"{name}"."main"."{TABLE}"') for q in MIX]
    refresh_body = {
        "connection_id": connection_id,
        "schema_name": "main",
        "table_name": SMALL,
        "data": True,
    }
    clients = sizes.query_clients
    settings = {
        "query_memory_mb": str(MEMORY_BUDGET_MB),
        "query_row_limit": str(sizes.query_rows + 1),
        "query_byte_limit": str(4 * 2**30),
        "query_concurrency": str(clients + sizes.runaway_clients),
    }
    with serve_api(**settings) as (url, server):
        address = address_of(url)
        for sql in queries:  # warm-up: the first query of a file reads its metadata
            expect(post(address, "/query", {"sql": sql}), 200)
        calm = _aggregate_load(address, queries, clients, sizes.query_seconds)
        for _ in range(2):  # warm-up: a process's first runs start Prefect's client and engine
            expect(post(address, "/refresh", refresh_body), 200)
        refresh_alone = statistics.median(
            timed(lambda: expect(post(address, "/refresh", refresh_body), 200))
            for _ in range(sizes.repeat)
        )
        refreshes: list[float] = []

        def refresh_while_busy() -> None:
            for _ in range(sizes.repeat):
                refreshes.append(
                    timed(lambda: expect(post(address, "/refresh", refresh_body), 200))
                )

        with _runaways(address, sizes) as runaways, _peak_rss(server.pid) as memory:
            busy = _aggregate_load(
                address, queries, clients, sizes.query_seconds, during=refresh_while_busy
            )
        refresh_busy = statistics.median(refreshes)
        arrow, json_ = _full_table(address, f'SELECT * FROM "{name}"."main"."{TABLE}"')
    own = _duckdb_load(path, [q.format(t="t") for q in MIX], clients, sizes.query_seconds)
    return [
        _throughput_figure(calm, own, clients, sizes),
        _runaway_figure(calm, busy, runaways, sizes),
        _memory_figure(memory.peak_mb, memory.idle_mb),
        Figure(
            f"`POST /refresh` of a {1_000:,}-row table while runaways run",
            seconds(refresh_busy),
            f"undisturbed: {seconds(refresh_alone)}",
            f"{refresh_busy / refresh_alone:.2f}x",
            "≤ 2x",
            refresh_busy <= 2 * refresh_alone,
        ),
        _format_figure(arrow, json_, sizes),
    ]


# -- load ----------------------------------------------------------------------------------------


def _aggregate_load(
    address: Address,
    queries: list[str],
    clients: int,
    duration: float,
    during: Callable[[], None] | None = None,
) -> Load:
    """`clients` threads, each one keep-alive connection sending the mix in turn for
    `duration` seconds; `during` runs once a third of the way in."""
    load = Load()
    lock = threading.Lock()
    stop = time.monotonic() + duration

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(*address, timeout=120)
        for n in itertools.count(index):
            if time.monotonic() >= stop:
                break
            started = time.perf_counter()
            try:
                status, body = request(connection, "/query", {"sql": queries[n % len(queries)]})
                failure = (
                    None if status == 200 and b'"rows"' in body else f"{status} {body[:200]!r}"
                )
            except (OSError, http.client.HTTPException) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                connection.close()  # it reconnects on the next request
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if failure is None:
                    load.latencies.append(elapsed)
                else:
                    load.errors.append(failure)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    if during is not None:
        time.sleep(duration / 3)
        during()
    for thread in threads:
        thread.join()
    load.seconds = time.monotonic() - began
    return load


@dataclass
class _Runaways:
    durations: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@contextmanager
def _runaways(address: Address, sizes: Sizes) -> Iterator[_Runaways]:
    """Clients that send a query only the time limit ends, again and again, until the block
    ends; each must be answered 504."""
    runaways = _Runaways()
    stop = threading.Event()

    def client() -> None:
        with closing(http.client.HTTPConnection(*address, timeout=120)) as connection:
            while not stop.is_set():
                started = time.perf_counter()
                body = {"sql": RUNAWAY, "timeout_seconds": sizes.runaway_limit_seconds}
                status, answer = request(connection, "/query", body)
                runaways.durations.append(time.perf_counter() - started)
                if status != 504:
                    runaways.errors.append(f"{status}: {answer[:200]!r}")

    threads = [threading.Thread(target=client) for _ in range(sizes.runaway_clients)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the runaways hold their slots before the other clients start
    try:
        yield runaways
    finally:
        stop.set()
        for thread in threads:
            thread.join()


@dataclass
class _Memory:
    idle_mb: float
    peak_mb: float = 0.0


@contextmanager
def _peak_rss(pid: int) -> Iterator[_Memory]:
    """The resident memory of process `pid`, sampled every 50 ms while the block runs."""
    process = psutil.Process(pid)
    memory = _Memory(idle_mb=process.memory_info().rss / 2**20)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            memory.peak_mb = max(memory.peak_mb, process.memory_info().rss / 2**20)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield memory
    finally:
        done.set()
        sampler.join()


def _duckdb_load(path: str, queries: list[str], clients: int, duration: float) -> Load:
    """DuckDB's own throughput: one database, a cursor per thread, the same file and mix."""
    load = Load()
    lock = threading.Lock()
    with closing(duckdb.connect()) as con:
        con.execute("SET parquet_metadata_cache = true")
        stop = time.monotonic() + duration

        def client(index: int) -> None:
            with closing(con.cursor()) as cursor:
                cursor.execute(f"CREATE TEMP VIEW t AS SELECT * FROM read_parquet('{path}')")
                n = index
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    cursor.execute(queries[n % len(queries)]).fetchall()
                    n += 1
                    with lock:
                        load.latencies.append((time.perf_counter() - started) * 1000)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        load.seconds = time.monotonic() - began
    return load


# -- the whole table -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Download:
    seconds: float
    bytes: int
    rows: int


def _full_table(address: Address, sql: str) -> tuple[_Download, _Download]:
    def fetch(accept: str, read: Callable[[bytes], int]) -> _Download:
        with closing(http.client.HTTPConnection(*address, timeout=600)) as connection:
            started = time.perf_counter()
            status, body = request(connection, "/query", {"sql": sql}, accept=accept)
            if status != 200:
                raise RuntimeError(f"{accept}: {status} {body[:200]!r}")
            rows = read(body)
            return _Download(time.perf_counter() - started, len(body), rows)

    arrow = fetch(ARROW, lambda body: pa.ipc.open_stream(body).read_all().num_rows)
    as_json = fetch("application/json", lambda body: len(json.loads(body)["rows"]))
    return arrow, as_json


# -- figures -------------------------------------------------------------------------------------


def _throughput_figure(calm: Load, own: Load, clients: int, sizes: Sizes) -> Figure:
    ratio = calm.qps / own.qps
    return Figure(
        f"{clients} clients, mixed aggregates over a cached {sizes.query_rows:,}-row table",
        f"{calm.qps:.1f} queries/s, p99 {calm.p99:.0f} ms, {len(calm.errors)} errors",
        f"DuckDB, same file, cursor per thread: {own.qps:.1f} queries/s, p99 {own.p99:.0f} ms",
        f"{ratio:.2f}x",
        f"≥ {THROUGHPUT_TARGET}x, no errors",
        ratio >= THROUGHPUT_TARGET and not calm.errors,
    )


def _runaway_figure(calm: Load, busy: Load, runaways: _Runaways, sizes: Sizes) -> Figure:
    limit = sizes.runaway_limit_seconds
    longest = max(runaways.durations, default=float("inf"))
    errors = len(busy.errors) + len(runaways.errors)
    return Figure(
        f"same, with {sizes.runaway_clients} clients sending runaway queries "
        f"(limit {limit:g} s, {sizes.query_clients + sizes.runaway_clients} query slots)",
        f"p99 {busy.p99:.0f} ms, {errors} errors, {len(runaways.durations)} runaways stopped, "
        f"longest {longest:.2f} s",
        f"undisturbed p99 {calm.p99:.0f} ms",
        f"{busy.p99 / calm.p99:.2f}x",
        f"≤ 2x, every runaway ≤ {limit + 1:g} s",
        busy.p99 <= 2 * calm.p99 and longest <= limit + 1 and not errors,
    )


def _memory_figure(peak_mb: float, idle_mb: float) -> Figure:
    used = peak_mb - idle_mb
    return Figure(
        "server memory during the runaway load",
        f"peak RSS {megabytes(peak_mb)} (+{megabytes(used)} over idle)",
        f"query memory budget {megabytes(MEMORY_BUDGET_MB)}",
        f"{used / MEMORY_BUDGET_MB:.2f}x",
        "growth ≤ budget",
        used <= MEMORY_BUDGET_MB,
    )


def _format_figure(arrow: _Download, as_json: _Download, sizes: Sizes) -> Figure:
    return Figure(
        f"{sizes.query_rows:,}-row result, Arrow IPC stream read by pyarrow",
        f"{seconds(arrow.seconds)}, {megabytes(arrow.bytes / 1e6)}",
        f"JSON: {seconds(as_json.seconds)}, {megabytes(as_json.bytes / 1e6)}",
        f"{arrow.seconds / as_json.seconds:.2f}x time, {arrow.bytes / as_json.bytes:.2f}x bytes",
        "faster and smaller than JSON",
        arrow.seconds < as_json.seconds
        and arrow.bytes < as_json.bytes
        and arrow.rows == as_json.rows == sizes.query_rows,
    )
