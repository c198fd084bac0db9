"""Fetching a PostgreSQL table into a zstd Parquet file: our read paths compared.

`python -m bench` measures the figures of the README against outside baselines; this compares
the read paths of `sources.postgres` with each other, on the same table (bench/data.py).

Each method runs in a fresh process (so peak RSS is its own) on the same table; the median
time of the repeats is printed with its ratio to the baseline, a psycopg server-side cursor
(the robust fallback path), measured in the same run. `--threads 4` runs four reads at once in
threads of one process, as parallel table refreshes do: connectorx holds the GIL and serialises.

    python -m bench.fetch_postgres [--rows N] [--repeat N] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from bench.data import TABLE, Postgres, table_sql
from bench.worker import peak_rss_kb
from sources import PostgresConfig, TableMetadata, discover
from sources import postgres as pg_driver
from sources.arrow import conform

Fetch = Callable[[PostgresConfig, TableMetadata], Iterator[pa.RecordBatch]]
BASELINE = "cursor"
BATCH_ROWS = 65_536


def _fetch_with(method: pg_driver.ReadMethod) -> Fetch:
    """One of the read paths of `sources.postgres`, cast to the discovered schema."""

    def fetch(config: PostgresConfig, table: TableMetadata) -> Iterator[pa.RecordBatch]:
        with pg_driver.open_stream(config, None, table, BATCH_ROWS, method=method) as stream:
            yield from conform(stream.batches(), table.arrow_schema)

    return fetch


def _fetch_copy_csv(config: PostgresConfig, table: TableMetadata) -> Iterator[pa.RecordBatch]:
    options = pa_csv.ConvertOptions(
        column_types=table.arrow_schema,
        strings_can_be_null=True,
        true_values=["t"],
        false_values=["f"],
        timestamp_parsers=["%Y-%m-%d %H:%M:%S%z"],
    )
    with (
        psycopg.connect(
            host=config.host, port=config.port, user=config.user, dbname=config.database
        ) as conn,
        conn.cursor() as cursor,
        cursor.copy(f"COPY {TABLE} TO STDOUT (FORMAT csv)") as copy,
    ):
        stream = io.BufferedReader(_CopyStream(copy), buffer_size=1 << 20)
        reader = pa_csv.open_csv(
            stream,
            read_options=pa_csv.ReadOptions(column_names=table.arrow_schema.names),
            convert_options=options,
        )
        yield from conform(reader, table.arrow_schema)


class _CopyStream(io.RawIOBase):
    """A file over psycopg's COPY chunks, for pyarrow's streaming CSV reader."""

    def __init__(self, copy: Any) -> None:
        self._chunks = iter(copy)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = bytes(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size], self._pending = self._pending[:size], self._pending[size:]
        return size


METHODS: dict[str, Fetch] = {
    "cursor": _fetch_with("cursor"),
    **({"adbc": _fetch_with("adbc")} if pg_driver.adbc_postgresql is not None else {}),
    "connectorx": _fetch_with("connectorx"),
    "copy csv": _fetch_copy_csv,
}


def run_worker(method: str, config: PostgresConfig, out: Path, threads: int) -> dict[str, float]:
    """Fetch the bench table with `method` into `out` (`threads` times at once, in threads)."""
    table = next(
        t for t in discover(config, None, connection_name="bench") if t.table_name == TABLE
    )

    def fetch_into(path: Path) -> int:
        rows = 0
        with pq.ParquetWriter(path, table.arrow_schema, compression="zstd") as writer:
            for batch in METHODS[method](config, table):
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        rows = list(
            pool.map(fetch_into, [out.with_suffix(f".{i}.parquet") for i in range(threads)])
        )
    return {
        "seconds": time.perf_counter() - started,
        "peak_mb": peak_rss_kb() / 1024,
        "rows": rows[0],
        "file_mb": out.with_suffix(".0.parquet").stat().st_size / 1e6,
    }


def measure(
    method: str, config: PostgresConfig, out: Path, threads: int
) -> dict[str, float] | None:
    command = [
        sys.executable,
        "-m",
        "bench.fetch_postgres",
        "--worker",
        method,
        "--config",
        config.model_dump_json(),
        "--out",
        str(out),
        "--threads",
        str(threads),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    if result.returncode != 0:
        print(f"{method}: failed: {result.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(result.stdout)


@contextmanager
def bench_database(pg: Postgres, rows: int) -> Iterator[PostgresConfig]:
    """A new database holding the bench table (bench/data.py), dropped on exit."""
    with pg.database("fetch") as name:
        with pg.connect(name) as conn:
            conn.execute(table_sql(TABLE, rows, "generate_series(1, {rows}) AS s(i)"))
            conn.execute(f"VACUUM ANALYZE {TABLE}")
        yield PostgresConfig(host=pg.host, port=pg.port, user=pg.user, database=name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100k rows, one repeat")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    parser.add_argument("--threads", type=int, default=1, help="concurrent reads per method")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        config = PostgresConfig.model_validate_json(args.config)
        print(json.dumps(run_worker(args.worker, config, Path(args.out), args.threads)))
        return
    rows, repeat = (100_000, 1) if args.quick else (args.rows, args.repeat)
    pg = Postgres(args.host, args.port, args.user)
    with bench_database(pg, rows) as config, tempfile.TemporaryDirectory() as tmp:
        results: dict[str, list[dict[str, float]]] = {}
        for _ in range(repeat):
            for method in METHODS:
                result = measure(method, config, Path(tmp) / "out.parquet", args.threads)
                if result is not None:
                    results.setdefault(method, []).append(result)
    report(results, rows, repeat, args.threads)


def report(
    results: dict[str, list[dict[str, float]]], rows: int, repeat: int, threads: int
) -> None:
    baseline = statistics.median(r["seconds"] for r in results[BASELINE])
    print(
        f"PostgreSQL -> zstd Parquet, {rows:,} rows x 9 columns, {threads} read(s) at once "
        f"in threads, median of {repeat}"
    )
    print(f"{'method':<22}{'seconds':>9}{'vs ' + BASELINE:>12}{'peak MB':>9}{'file MB':>9}")
    for method, runs in results.items():
        seconds = statistics.median(r["seconds"] for r in runs)
        peak = statistics.median(r["peak_mb"] for r in runs)
        size = statistics.median(r["file_mb"] for r in runs)
        print(f"{method:<22}{seconds:>9.2f}{seconds / baseline:>11.2f}x{peak:>9.0f}{size:>9.1f}")


if __name__ == "__main__":
    main()
