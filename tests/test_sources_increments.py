"""Incremental reads past a cursor value, and primary keys, on every kind of source.

Each source holds the same five rows; the cursor columns (an integer, a timestamp with and
without time zone, a date) order them 10, 20, 20, 30 and NULL, so a bound at 20 has equal
values on its boundary and a NULL that no bound ever reaches.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from sources import (
    CursorBound,
    CursorValue,
    SourceConfig,
    discover,
    open_reader,
    parse_source_config,
)
from sources import primary_key as source_primary_key
from sources.metadata import TableMetadata
from tests.source_dbs import SourceDB, source_db

STEPS = [10, 20, 20, 30, None]
BASE = dt.datetime(2026, 3, 1, 12, 0, 0, 250000)

# Per source: the DDL of `events` and the SQL literal of each cursor type for a step.
COLUMN_TYPES = {
    "postgres": ("bigint", "timestamptz", "timestamp", "date"),
    "mariadb": ("bigint", "timestamp(6) NULL", "datetime(6)", "date"),
    "duckdb": ("bigint", "timestamptz", "timestamp", "date"),
    "sqlite": ("integer", None, "datetime", "date"),
}


def _literals(kind: str, step: int | None) -> list[str]:
    if step is None:
        return ["NULL"] * 4
    at = BASE + dt.timedelta(minutes=step)
    day = BASE.date() + dt.timedelta(days=step)
    separator = " " if kind in ("mariadb", "sqlite") else "T"
    zone = "" if kind in ("mariadb", "sqlite") else "+00:00"
    return [
        str(step),
        f"'{at.isoformat(separator)}{zone}'",
        f"'{at.isoformat(separator)}'",
        f"'{day.isoformat()}'",
    ]


@pytest.fixture(params=list(COLUMN_TYPES))
def events(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SourceDB, str]]:
    kind: str = request.param
    with source_db(kind, tmp_path) as source:
        types = COLUMN_TYPES[kind]
        names = ["n", "at_tz", "at", "day"]
        columns = ", ".join(f'"{n}" {t}' for n, t in zip(names, types, strict=True) if t)
        source.execute(f'CREATE TABLE "events" ("id" integer PRIMARY KEY, {columns})')
        for row_id, step in enumerate(STEPS, start=1):
            values = [v for v, t in zip(_literals(kind, step), types, strict=True) if t]
            source.execute(f'INSERT INTO "events" VALUES ({row_id}, {", ".join(values)})')
        yield source, kind


def _table(source: SourceDB) -> tuple[TableMetadata, SourceConfig]:
    source_type, config = source.registration()
    parsed = parse_source_config(source_type, config)
    (table,) = [t for t in discover(parsed, None, connection_name="c") if t.table_name == "events"]
    return table, parsed


def _ids_past(source: SourceDB, bound: CursorBound) -> list[int]:
    table, config = _table(source)
    with open_reader(config, None, table, connection_name="c", since=bound) as reader:
        return sorted(reader.read_all().column("id").to_pylist())


def _cursor_values(kind: str) -> dict[str, CursorValue]:
    at = BASE + dt.timedelta(minutes=20)
    values: dict[str, CursorValue] = {
        "n": 20,
        "at": at,
        "day": BASE.date() + dt.timedelta(days=20),
    }
    if COLUMN_TYPES[kind][1] is not None:
        values["at_tz"] = at.replace(tzinfo=dt.UTC)
    return values


def test_a_bound_reads_the_rows_past_it_and_never_a_null_cursor(
    events: tuple[SourceDB, str],
) -> None:
    source, kind = events
    for column, value in _cursor_values(kind).items():
        assert _ids_past(source, CursorBound(column, value)) == [4], column
        assert _ids_past(source, CursorBound(column, value, inclusive=True)) == [2, 3, 4], column


def test_the_primary_key_is_read_from_the_source(events: tuple[SourceDB, str]) -> None:
    source, _ = events
    table, config = _table(source)
    key = source_primary_key(config, None, table.schema_name, "events", connection_name="c")
    assert key == ["id"]


def test_a_composite_key_keeps_its_order_and_a_view_has_none(tmp_path: Path) -> None:
    for kind in ("postgres", "duckdb"):
        with source_db(kind, tmp_path) as source:
            source.execute(
                'CREATE TABLE "lines" ("order_id" integer, "line" integer, "qty" integer, '
                'PRIMARY KEY ("line", "order_id"))',
                'CREATE VIEW "recent" AS SELECT * FROM "lines"',
            )
            source_type, config = source.registration()
            parsed = parse_source_config(source_type, config)
            key = source_primary_key(parsed, None, source.schema, "lines", connection_name="c")
            assert key == ["line", "order_id"], kind
            view = source_primary_key(parsed, None, source.schema, "recent", connection_name="c")
            assert view == [], kind
