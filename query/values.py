"""Turn DuckDB's Python values into JSON-safe ones.

- DECIMAL: a string with every digit (``"12.50"``), never a lossy float;
- TIMESTAMP / TIMESTAMPTZ (in UTC) / DATE / TIME: ISO 8601 strings;
- INTERVAL: an ISO 8601 duration (``"P32DT3H0M0S"``; DuckDB counts a month as 30 days here);
- BLOB: base64; UUID: its canonical string;
- NaN and ±infinity: the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (as PostgreSQL's
  to_json does), so they stay distinct from SQL NULL (``null``);
- LIST / ARRAY: JSON arrays; STRUCT and MAP: JSON objects (non-string MAP keys become strings).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

_MICROSECONDS_PER_SECOND = 1_000_000


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {_key(key): json_safe(item) for key, item in value.items()}
    return str(value)


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _duration(value: timedelta) -> str:
    total = value // timedelta(microseconds=1)
    sign, total = ("-", -total) if total < 0 else ("", total)
    seconds, micros = divmod(total, _MICROSECONDS_PER_SECOND)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    fraction = f".{micros:06d}".rstrip("0") if micros else ""
    return f"{sign}P{days}DT{hours}H{minutes}M{seconds}{fraction}S"


def _key(key: Any) -> str:
    safe = json_safe(key)
    return safe if isinstance(safe, str) else json.dumps(safe)


# DuckDB types whose Python values are JSON-safe as they come.
_AS_IS = frozenset(
    {
        "BOOLEAN",
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
        "VARCHAR",
    }
)


def row_converter(type_names: list[str]) -> Callable[[tuple[Any, ...]], Sequence[Any]]:
    """``json_safe`` for every value of a row, skipping the columns whose type needs nothing.

    ``type_names`` are DuckDB's column types (``cursor.description``); a row is converted many
    times, so the per-value type checks are done once per column here.
    """
    converters = [None if name in _AS_IS else _converter(name) for name in type_names]
    if not any(converters):
        return lambda row: row
    return lambda row: [
        value if convert is None or value is None else convert(value)
        for convert, value in zip(converters, row, strict=True)
    ]


def _converter(type_name: str) -> Callable[[Any], Any]:
    if type_name.startswith("DECIMAL"):
        return _decimal
    if type_name in ("DOUBLE", "FLOAT"):
        return _float
    if type_name.startswith(("DATE", "TIMESTAMP", "TIME")) and not type_name.endswith("[]"):
        return _iso
    return json_safe


def _decimal(value: Decimal) -> str:
    return format(value, "f")


def _iso(value: date | time) -> str:
    return value.isoformat()
