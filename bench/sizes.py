"""How much data each figure uses: the full bench, or the quick smoke mode."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    rows: int  # the fetch table; the memory figure compares it with rows // 5
    repeat: int  # runs per measurement, the median is reported
    tiny_tables: int
    slow_tables: int
    slow_seconds: float
    schema_tables: tuple[int, int]  # the large and the small connection
    http_clients: int
    http_requests: int  # per client
    cleanup_files: int

    @property
    def small_rows(self) -> int:
        return self.rows // 5


FULL = Sizes(
    rows=5_000_000,
    repeat=3,
    tiny_tables=200,
    slow_tables=40,
    slow_seconds=0.5,
    schema_tables=(5_000, 500),
    http_clients=50,
    http_requests=40,
    cleanup_files=10_000,
)
QUICK = Sizes(
    rows=20_000,
    repeat=1,
    tiny_tables=8,
    slow_tables=4,
    slow_seconds=0.5,
    schema_tables=(200, 20),
    http_clients=50,
    http_requests=4,
    cleanup_files=500,
)
