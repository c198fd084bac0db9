"""What each fresh process measures: our refresh, and the baselines that read without our code.

Each function imports what it needs, runs once and returns (seconds, bytes written); imports
and set-up are outside the timing. A baseline writes what the cache writes, pinned: DuckDB's
COPY takes the options of ours (sources/duckdb_source.py COPY_OPTIONS), the raw streams go
through the cache's Parquet writer (storage/parquet.py: zstd at the same level, the same row
groups), so a ratio compares reading and orchestration, not encodings.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

TABLE_QUERY = "SELECT * FROM {table}"
BATCH_ROWS = 65_536
DltBackend = Literal["sqlalchemy", "pyarrow", "pandas", "connectorx"]


def ours(connection_id: int, schema_name: str, table_name: str) -> tuple[float, int]:
    """refresh_table_now: source -> new cache file -> catalog swap (settings from FRESHCACHE_*)."""
    from runtime.container import build_runtime
    from runtime.settings import load_settings
    from tasks.refresh_table import refresh_table_now

    runtime = build_runtime(load_settings())
    try:
        started = time.perf_counter()
        refresh_table_now(runtime, connection_id, schema_name, table_name)
        seconds = time.perf_counter() - started
        path = runtime.catalog.get_table(connection_id, schema_name, table_name).parquet_path
    finally:
        runtime.close()
    assert path is not None
    return seconds, Path(path).stat().st_size


def duckdb_copy(database: str, table: str, out: str) -> tuple[float, int]:
    """DuckDB's native COPY TO parquet, all cores, with the cache's options (zstd level, row
    group size)."""
    import duckdb

    from sources.duckdb_source import COPY_OPTIONS

    started = time.perf_counter()
    with duckdb.connect(database, read_only=True) as con:
        query = TABLE_QUERY.format(table=table)
        con.execute(f"COPY ({query}) TO '{out}' ({COPY_OPTIONS})")
    return time.perf_counter() - started, Path(out).stat().st_size


def _write_stream(reader: Any, out: str) -> None:
    from storage.parquet import write_batches

    with open(out, "wb") as sink:
        write_batches(reader, sink)


def adbc(uri: str, table: str, out: str) -> tuple[float, int]:
    """ADBC's PostgreSQL driver streaming straight into pyarrow's ParquetWriter."""
    import adbc_driver_postgresql.dbapi as adbc_postgresql

    from sources.postgres import ADBC_OPTIONS

    started = time.perf_counter()
    with adbc_postgresql.connect(uri, db_kwargs=ADBC_OPTIONS) as conn, conn.cursor() as cursor:
        cursor.execute(TABLE_QUERY.format(table=table))
        _write_stream(cursor.fetch_record_batch(), out)
    return time.perf_counter() - started, Path(out).stat().st_size


def connectorx(uri: str, table: str, out: str) -> tuple[float, int]:
    """connectorx's arrow_stream straight into pyarrow's ParquetWriter."""
    import connectorx as cx

    started = time.perf_counter()
    reader = cx.read_sql(
        uri, TABLE_QUERY.format(table=table), return_type="arrow_stream", batch_size=BATCH_ROWS
    )
    _write_stream(reader, out)
    return time.perf_counter() - started, Path(out).stat().st_size


def pandas_chunks(url: str, table: str, out: str) -> tuple[float, int]:
    """What users write by hand: pandas.read_sql in chunks of 50k rows, each appended to Parquet."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    started = time.perf_counter()
    writer = None
    for chunk in pd.read_sql(TABLE_QUERY.format(table=table), engine, chunksize=50_000):
        # Every chunk takes the first one's schema, or a chunk could infer other types.
        part = pa.Table.from_pandas(
            chunk, schema=writer.schema if writer else None, preserve_index=False
        )
        writer = writer or pq.ParquetWriter(out, part.schema, compression="zstd")
        writer.write_table(part)
    assert writer is not None
    writer.close()
    engine.dispose()
    return time.perf_counter() - started, Path(out).stat().st_size


def dlt_sql_table(url: str, table: str, out: str, backend: DltBackend) -> tuple[float, int]:
    """dlt: sql_table -> filesystem destination as Parquet, with the given backend."""
    import os

    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    import dlt
    from dlt.sources.sql_database import sql_table

    work = Path(out) / uuid.uuid4().hex  # a new pipeline each run: nothing appends
    source = sql_table(credentials=url, table=table, backend=backend, chunk_size=BATCH_ROWS)
    pipeline = dlt.pipeline(
        pipeline_name="fc_bench",
        pipelines_dir=str(work / "pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=(work / "files").as_uri()),
        dataset_name="bench",
    )
    started = time.perf_counter()
    pipeline.run(source, loader_file_format="parquet")
    seconds = time.perf_counter() - started
    size = sum(f.stat().st_size for f in (work / "files").rglob("*.parquet"))
    return seconds, size


FETCHES: dict[str, Callable[..., tuple[float, int]]] = {
    "ours": ours,
    "duckdb_copy": duckdb_copy,
    "adbc": adbc,
    "connectorx": connectorx,
    "pandas": pandas_chunks,
    "dlt": dlt_sql_table,
}
