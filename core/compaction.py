"""Compaction: a snapshot of several files rewritten into one file holding the same rows.

The rows are copied as written (pyarrow reads and writes them; nothing goes through another
type system). For merge, the rows whose key a later file holds again are left out, so the new
file holds the latest row of every key, as queries read it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from datetime import timedelta

import duckdb
import pyarrow as pa

from catalog import Catalog, Snapshot, SwapResult
from core.cache_errors import naming_the_table
from core.sql import quote_literal
from sources import quote_ident, schema_from_json
from sources.arrow import conform
from storage import CacheStorage


def compact(
    catalog: Catalog,
    storage: CacheStorage,
    snapshot: Snapshot,
    *,
    connection_name: str,
    grace: timedelta,
) -> SwapResult:
    """Write `snapshot`'s rows into one new file and swap it in for its files, atomically.

    Superseded (the new file queued at once) when a refresh changed the files meanwhile.
    """
    table = snapshot.table
    schema = schema_from_json(table.arrow_schema_json)
    key = snapshot.increments.primary_key if snapshot.increments else ()
    files = snapshot.files
    path = storage.new_version_path(table.connection_id, table.schema_name, table.table_name)
    with naming_the_table(connection_name, table.schema_name, table.table_name):
        dropped = _rows_replaced_later(storage, files, key) if key else {}
        batches = conform(_kept_batches(storage, files, dropped), schema)
        storage.write_parquet(path, pa.RecordBatchReader.from_batches(schema, batches))
    try:
        return catalog.swap_compacted(
            table.connection_id,
            table.schema_name,
            table.table_name,
            path,
            compacted=files,
            delete_after=catalog.clock() + grace,
        )
    except BaseException:
        storage.delete(path)
        raise


def _rows_replaced_later(
    storage: CacheStorage, files: Sequence[str], key: Sequence[str]
) -> dict[int, list[int]]:
    """For each file (by rank), the numbers of its rows whose key a later file holds, sorted."""
    ranked = " UNION ALL ".join(
        f"SELECT {', '.join(quote_ident(k) for k in key)}, {rank} AS file_rank, "
        f"file_row_number FROM read_parquet({quote_literal(storage.duckdb_path(path))}, "
        "file_row_number = true)"
        for rank, path in enumerate(files)
    )
    same = " AND ".join(f"a.{quote_ident(k)} IS NOT DISTINCT FROM b.{quote_ident(k)}" for k in key)
    con = duckdb.connect(":memory:")
    try:
        storage.register_with_duckdb(con)
        rows = con.sql(
            f"WITH k AS MATERIALIZED ({ranked}) "
            "SELECT a.file_rank, a.file_row_number FROM k a "
            f"SEMI JOIN (SELECT * FROM k WHERE file_rank > 0) b "
            f"ON {same} AND b.file_rank > a.file_rank ORDER BY a.file_rank, a.file_row_number"
        ).fetchall()
    finally:
        con.close()
    replaced: dict[int, list[int]] = {}
    for rank, number in rows:
        replaced.setdefault(rank, []).append(number)
    return replaced


def _kept_batches(
    storage: CacheStorage, files: Sequence[str], dropped: dict[int, list[int]]
) -> Iterator[pa.RecordBatch]:
    for rank, path in enumerate(files):
        gone = dropped.get(rank, [])
        offset = 0
        for batch in storage.iter_parquet(path):
            end = offset + batch.num_rows
            inside = gone[bisect_left(gone, offset) : bisect_left(gone, end)]
            if inside:
                keep = [True] * batch.num_rows
                for number in inside:
                    keep[number - offset] = False
                batch = batch.filter(pa.array(keep))
            offset = end
            yield batch
