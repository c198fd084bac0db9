"""What each fresh process measures: our refresh, and the baselines that use none of our code.

Each function imports what it needs, runs once and returns (seconds, bytes written); imports
and set-up are outside the timing.
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
    """refresh_table_data: source -> new cache file -> catalog swap (settings from FRESHCACHE_*)."""
    from runtime.container import get_runtime
    from tasks.refresh_table import refresh_table_data

    runtime = get_runtime()
    started = time.perf_counter()
    refresh_table_data(connection_id, schema_name, table_name)
    seconds = time.perf_counter() - started
    path = runtime.catalog.get_table(connection_id, schema_name, table_name).parquet_path
    assert path is not None
    return seconds, Path(path).stat().st_size


def duckdb_copy(database: str, table: str, out: str) -> tuple[float, int]:
    """DuckDB's native COPY TO parquet (zstd), all cores."""
    import duckdb

    started = time.perf_counter()
    with duckdb.connect(database, read_only=True) as con:
        query = TABLE_QUERY.format(table=table)
        con.execute(f"COPY ({query}) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    return time.perf_counter() - started, Path(out).stat().st_size


def _write_stream(batches: Any, schema: Any, out: str) -> None:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(out, schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)


def adbc(uri: str, table: str, out: str) -> tuple[float, int]:
    """ADBC's PostgreSQL driver streaming straight into pyarrow's ParquetWriter."""
    import adbc_driver_postgresql.dbapi as adbc_postgresql

    started = time.perf_counter()
    with adbc_postgresql.connect(uri) as conn, conn.cursor() as cursor:
        cursor.execute(TABLE_QUERY.format(table=table))
        reader = cursor.fetch_record_batch()
        _write_stream(reader, reader.schema, out)
    return time.perf_counter() - started, Path(out).stat().st_size


def connectorx(uri: str, table: str, out: str) -> tuple[float, int]:
    """connectorx's arrow_stream straight into pyarrow's ParquetWriter."""
    import connectorx as cx

    started = time.perf_counter()
    reader = cx.read_sql(
        uri, TABLE_QUERY.format(table=table), return_type="arrow_stream", batch_size=BATCH_ROWS
    )
    _write_stream(reader, reader.schema, out)
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
