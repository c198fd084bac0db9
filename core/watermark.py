"""High-water marks: the greatest cursor value a table's cache holds, kept as typed JSON."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from sources import CursorValue


def to_json(value: CursorValue) -> str:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a cursor value")
    if isinstance(value, int):
        return json.dumps({"int": str(value)})
    if isinstance(value, Decimal):
        return json.dumps({"decimal": format(value, "f")})
    if isinstance(value, dt.datetime):
        return json.dumps({"timestamp": value.isoformat()})
    if isinstance(value, dt.date):
        return json.dumps({"date": value.isoformat()})
    raise TypeError(f"not a cursor value: {type(value).__name__}")


def from_json(text: str) -> CursorValue:
    ((kind, value),) = json.loads(text).items()
    if kind == "int":
        return int(value)
    if kind == "decimal":
        return Decimal(value)
    if kind == "timestamp":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    raise ValueError(f"unknown high-water mark kind {kind!r}")


def greatest(column: pa.Array | pa.ChunkedArray) -> CursorValue | None:
    """The greatest non-null value of a cursor column (None when every value is null).

    Nanosecond timestamps are floored to microseconds, the precision of the mark.
    """
    value = pc.max(_at_mark_precision(column)).as_py()
    return value  # type: ignore[no-any-return]


def at_or_before(column: pa.Array | pa.ChunkedArray, mark: CursorValue) -> pa.Array:
    """Which values of a cursor column are at or before `mark` (at its precision); nulls: null."""
    column = _at_mark_precision(column)
    return pc.less_equal(column, pa.scalar(mark, type=column.type))


def minus_seconds(value: CursorValue, seconds: float) -> CursorValue:
    """A mark moved back by a lookback: for a date, by as many whole days as cover it."""
    if not seconds:
        return value
    if isinstance(value, dt.datetime):
        return value - dt.timedelta(seconds=seconds)
    if isinstance(value, dt.date):
        return value - dt.timedelta(days=math.ceil(seconds / 86_400))
    raise TypeError(f"a lookback needs a timestamp or date mark, not {type(value).__name__}")


def _at_mark_precision(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
        return pc.floor_temporal(column, unit="microsecond").cast(
            pa.timestamp("us", column.type.tz)
        )
    return column


def later(first: CursorValue | None, second: CursorValue | None) -> CursorValue | None:
    """The later of two marks, either of which may be missing."""
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)  # type: ignore[type-var]
