"""How much data each figure uses: the full bench, or the quick smoke mode."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    rows: int  # the PostgreSQL fetch table; the memory figure compares it with rows // 5
    duckdb_rows: int  # the DuckDB fetch table
    repeat: int  # runs per measurement, the median is reported
    latency_repeat: int  # requests per latency figure of the user paths, after one warm-up
    tiny_tables: int
    slow_tables: int
    slow_seconds: float
    schema_tables: tuple[int, int]  # the large and the small connection
    http_clients: int
    http_requests: int  # per client
    cleanup_files: int
    delta_files: int  # of the append table queried before and after its compaction
    freshness_tables: int  # the freshness flow decides over this many tables
    query_rows: int  # the cached table the query figures read
    query_seconds: float  # how long each query load runs
    query_clients: int
    runaway_clients: int
    runaway_limit_seconds: float

    @property
    def small_rows(self) -> int:
        return self.rows // 5


FULL = Sizes(
    rows=5_000_000,
    duckdb_rows=3_000_000,
    repeat=3,
    latency_repeat=9,
    tiny_tables=200,
    slow_tables=40,
    slow_seconds=0.5,
    schema_tables=(5_000, 500),
    http_clients=50,
    http_requests=40,
    cleanup_files=10_000,
    delta_files=50,
    freshness_tables=5_000,
    query_rows=1_000_000,
    query_seconds=20,
    query_clients=16,
    runaway_clients=4,
    runaway_limit_seconds=5,
)
QUICK = Sizes(
    rows=20_000,
    duckdb_rows=20_000,
    repeat=1,
    latency_repeat=1,
    tiny_tables=8,
    slow_tables=4,
    slow_seconds=0.5,
    schema_tables=(200, 20),
    http_clients=50,
    http_requests=4,
    cleanup_files=500,
    delta_files=5,
    freshness_tables=200,
    query_rows=20_000,
    query_seconds=1.5,
    query_clients=16,
    runaway_clients=4,
    runaway_limit_seconds=1,
)
