"""Incremental reads: only the rows whose cursor column is past a high-water mark."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pyarrow as pa

CursorValue = int | Decimal | dt.date | dt.datetime


@dataclass(frozen=True)
class CursorBound:
    """Rows whose `column` is greater than `value`, or also equal to it when `inclusive`.

    Rows whose cursor is NULL are never past a bound: an incremental read cannot see them.
    """

    column: str
    value: CursorValue
    inclusive: bool = False

    @property
    def operator(self) -> str:
        return ">=" if self.inclusive else ">"


def is_cursor_type(arrow_type: pa.DataType) -> bool:
    """Types whose order the source and Arrow agree on: integers, decimals, dates, timestamps."""
    return (
        pa.types.is_integer(arrow_type)
        or pa.types.is_decimal(arrow_type)
        or pa.types.is_date(arrow_type)
        or pa.types.is_timestamp(arrow_type)
    )


def sql_literal(value: CursorValue) -> str:
    """A typed SQL literal of a cursor value that PostgreSQL and DuckDB both read exactly.

    Values come from our own high-water marks, typed: nothing in them is spliced unchecked.
    """
    if isinstance(value, bool):
        raise TypeError("a boolean is not a cursor value")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"a cursor value must be finite, not {value}")
        return format(value, "f")
    if isinstance(value, dt.datetime):
        kind = "TIMESTAMP" if value.tzinfo is None else "TIMESTAMP WITH TIME ZONE"
        return f"CAST('{value.isoformat()}' AS {kind})"
    if isinstance(value, dt.date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    raise TypeError(f"not a cursor value: {type(value).__name__}")
