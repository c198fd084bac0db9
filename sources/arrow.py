"""Shaping batches to a target schema: casting Arrow batches and converting DB-API rows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa


def decimal_type(precision: int, scale: int) -> pa.DataType:
    """Arrow's exact decimal of this precision: 128-bit up to 38 digits, 256-bit beyond."""
    return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)


def conform(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Cast each batch, column by column in position, to exactly `schema`."""
    for batch in batches:
        columns = [column.cast(f.type) for column, f in zip(batch.columns, schema, strict=True)]
        yield pa.RecordBatch.from_arrays(columns, schema=schema)


def rows_to_batch(rows: Sequence[Sequence[Any]], schema: pa.Schema) -> pa.RecordBatch:
    """Convert DB-API rows (tuples in schema order) into one batch of `schema`."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = [_to_array(values, f.type) for values, f in zip(columns, schema, strict=True)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _to_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_string(arrow_type):
        values = [_text(v) for v in values]
    elif pa.types.is_time(arrow_type):
        values = [_time_of_day(v) for v in values]
    return pa.array(values, type=arrow_type)


def _text(value: Any) -> str | None:
    """Drivers hand some text-mapped types over as objects (json as dict, uuid, SET as set)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, set | frozenset):
        return ",".join(sorted(value))
    return str(value)


def _time_of_day(value: Any) -> dt.time | None:
    """MySQL drivers return TIME as a timedelta; one within a day is a time of day."""
    if not isinstance(value, dt.timedelta):
        return value
    if not dt.timedelta(0) <= value < dt.timedelta(days=1):
        raise ValueError(f"TIME value {value} is outside 00:00:00..23:59:59.999999")
    return (dt.datetime.min + value).time()
