"""The rows an incremental read finds at or before the high-water mark that the cache lacks.

An append read takes the rows at the mark again (`>=`): rows committed after the last read with
a cursor equal to the mark would be lost to a `>` read. A merge read takes the rows from the
mark minus its lookback. Of those rows, only the ones the snapshot does not hold already go
into the delta file: for append, the rows at the mark the cache does not hold (counted as a
multiset: two equal rows are two rows); for merge, the rows that differ from their key's current
row. A read with nothing else new then adds no file at all.

Both sides are compared as read exactly as written (the cache side by pyarrow, not through
DuckDB's Parquet reader): a few rows (the usual case, e.g. the one row at an integer mark) as
Python values, many as Arrow tables in DuckDB with columns named by position, so any column
name and any type compares the same on both sides.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sources import CursorValue, quote_ident
from storage import CacheStorage

_INDEX = quote_ident("__freshcache_index")
_NTH = quote_ident("__freshcache_nth")
_RANK = quote_ident("__freshcache_rank")
# Up to this many rows on both sides, Python compares them faster than DuckDB starts.
PYTHON_ROWS = 20_000
_NAN = ("NaN",)


def cached_rows(
    storage: CacheStorage,
    files: Sequence[str],
    boundary: pa.Table,
    *,
    cursor: str,
    mark: CursorValue,
    merge_key: Sequence[str],
) -> pa.Table:
    """The snapshot's rows to compare `boundary` with, each with the rank of its file.

    Append: the rows at the mark (no cached row is past it). Merge: the rows of the keys in
    `boundary` (a superset for a composite key: each column's values are matched separately).
    """
    if merge_key:
        where = None
        for column in merge_key:
            values = pc.unique(boundary.column(column))
            match = pc.field(column).isin(values)
            where = match if where is None else where & match
    else:
        where = pc.field(cursor) >= pa.scalar(mark, type=boundary.schema.field(cursor).type)
    parts = []
    for rank, path in enumerate(files):
        rows = storage.read_parquet(path, where=where)
        parts.append(
            rows.append_column("__freshcache_rank", pa.array([rank] * rows.num_rows, pa.int32()))
        )
    schema = boundary.schema.append(pa.field("__freshcache_rank", pa.int32()))
    return pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()


def unseen_rows(boundary: pa.Table, cached: pa.Table, merge_key: Sequence[str]) -> pa.Table:
    """The rows of `boundary` that the snapshot does not hold (see the module docstring).

    `cached` is `cached_rows`' answer: the boundary's columns plus the file rank, last.
    """
    if not boundary.num_rows or not cached.num_rows:
        return boundary
    few = boundary.num_rows + cached.num_rows <= PYTHON_ROWS
    if few and not any(_has_nanoseconds(f.type) for f in boundary.schema):
        return boundary.take(pa.array(_unseen_in_python(boundary, cached, merge_key), pa.int64()))
    return boundary.take(_unseen_in_duckdb(boundary, cached, merge_key))


def _unseen_in_python(boundary: pa.Table, cached: pa.Table, merge_key: Sequence[str]) -> list[int]:
    names = boundary.schema.names
    held_rows = _rows(cached)  # each row ends with its file's rank
    if merge_key:
        positions = [names.index(k) for k in merge_key]
        latest: dict[tuple[object, ...], tuple[object, ...]] = {}
        for row in sorted(held_rows, key=lambda r: r[-1]):  # type: ignore[arg-type, return-value]
            latest[tuple(_comparable(row[i]) for i in positions)] = row[:-1]
        held_rows = list(latest.values())
    else:
        held_rows = [row[:-1] for row in held_rows]
    held = Counter(_comparable(row) for row in held_rows)
    keep = []
    for index, row in enumerate(_rows(boundary)):
        key = _comparable(row)
        if held[key]:
            held[key] -= 1
        else:
            keep.append(index)
    return keep


def _rows(table: pa.Table) -> list[tuple[object, ...]]:
    return list(zip(*(column.to_pylist() for column in table.columns), strict=True))


def _comparable(value: object) -> Hashable:
    """A hashable value equal exactly when the values are (NaN equals NaN, as in DuckDB)."""
    if isinstance(value, float) and math.isnan(value):
        return _NAN
    if isinstance(value, list | tuple):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _comparable(v)) for k, v in value.items()))
    return value  # type: ignore[return-value]


def _has_nanoseconds(arrow_type: pa.DataType) -> bool:
    """Types whose Python values would lose their nanoseconds."""
    if pa.types.is_nested(arrow_type):
        return any(_has_nanoseconds(arrow_type.field(i).type) for i in range(arrow_type.num_fields))
    unit = getattr(arrow_type, "unit", None)
    return unit == "ns"


def _unseen_in_duckdb(
    boundary: pa.Table, cached: pa.Table, merge_key: Sequence[str]
) -> pa.ChunkedArray:
    names = boundary.schema.names
    columns = [f"c{i}" for i in range(len(names))]
    con = duckdb.connect(":memory:")
    try:
        con.register(
            "read_rows",
            _positional(boundary, columns).append_column(
                "__freshcache_index", pa.array(range(boundary.num_rows), pa.int64())
            ),
        )
        con.register("cached_rows", _positional(cached, [*columns, "__freshcache_rank"]))
        listed = ", ".join(columns)
        held = f"SELECT {listed} FROM cached_rows"
        if merge_key:
            key = ", ".join(columns[names.index(k)] for k in merge_key)
            held += f" QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {_RANK} DESC) = 1"
        same = " AND ".join(f"r.{c} IS NOT DISTINCT FROM h.{c}" for c in columns)
        keep = con.sql(
            f"WITH r AS (SELECT *, row_number() OVER (PARTITION BY {listed} ORDER BY {_INDEX}) "
            f"AS {_NTH} FROM read_rows), "
            f"h AS (SELECT *, row_number() OVER (PARTITION BY {listed}) AS {_NTH} FROM ({held})) "
            f"SELECT r.{_INDEX} FROM r ANTI JOIN h ON {same} AND r.{_NTH} = h.{_NTH} "
            f"ORDER BY r.{_INDEX}"
        ).to_arrow_table()
    finally:
        con.close()
    return keep.column(0)


def _positional(table: pa.Table, names: list[str]) -> pa.Table:
    """The table with columns c0, c1, ...; decimals DuckDB cannot hold compare as their text."""
    columns = [
        column.cast(pa.string()) if pa.types.is_decimal256(column.type) else column
        for column in table.columns
    ]
    return pa.table(columns, names=names)
