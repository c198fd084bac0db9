"""Incremental refreshes keep the cache equal to the source, on real PostgreSQL and MariaDB.

A random sequence of inserts and updates at the source, interleaved with incremental refreshes
(and compactions), leaves the cache equal to the source after every refresh: append, the same
rows; merge, the latest version of every key (and, after a full refresh, none of the deleted
ones). Cursor types: an integer, a timestamp with and without time zone, a date; each round
advances the cursor or not, so equal values at the boundary are the common case.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.incremental_support import Cache, cache_of
from tests.source_dbs import SourceDB, source_db

BASE = dt.datetime(2026, 3, 1, 12, 0, 0, 250000)
CURSORS = ["n", "at_tz", "at", "day"]
COLUMN_TYPES = {
    "postgres": ("bigint", "timestamptz", "timestamp", "date"),
    "mariadb": ("bigint", "timestamp(6) NULL", "datetime(6)", "date"),
    "duckdb": ("bigint", "timestamptz", "timestamp", "date"),
}


def cursor_literals(kind: str, step: int | None) -> list[str]:
    """The four cursor columns' SQL literals at `step` (NULL for None), in the order of CURSORS."""
    if step is None:
        return ["NULL"] * 4
    at = BASE + dt.timedelta(minutes=step)
    day = BASE.date() + dt.timedelta(days=step)
    mariadb = kind == "mariadb"
    text = at.isoformat(" " if mariadb else "T")
    return [str(step), f"'{text}{'' if mariadb else '+00:00'}'", f"'{text}'", f"'{day}'"]


class Events:
    """The source table `events`: id, label and the four cursor columns, written by step."""

    def __init__(self, source: SourceDB, kind: str) -> None:
        self.source = source
        self.kind = kind
        self.table = f'{source.schema}."events"'
        columns = ", ".join(
            f'"{name}" {sql_type}'
            for name, sql_type in zip(CURSORS, COLUMN_TYPES[kind], strict=True)
        )
        source.execute(
            f'CREATE TABLE {self.table} ("id" integer PRIMARY KEY, "label" varchar(40), {columns})'
        )
        self.ids: list[int] = []
        self.inserted = 0

    def insert(self, step: int | None, count: int = 1) -> None:
        if not count:
            return
        values = []
        for _ in range(count):
            self.inserted += 1
            row_id = self.inserted
            self.ids.append(row_id)
            literals = ", ".join(cursor_literals(self.kind, step))
            values.append(f"({row_id}, 'row {row_id} at {step}', {literals})")
        columns = ", ".join(f'"{name}"' for name in ["id", "label", *CURSORS])
        self.source.execute(f"INSERT INTO {self.table} ({columns}) VALUES {', '.join(values)}")

    def update(self, row_id: int, step: int, label: str) -> None:
        assignments = ", ".join(
            f'"{name}" = {value}'
            for name, value in zip(CURSORS, cursor_literals(self.kind, step), strict=True)
        )
        self.source.execute(
            f'UPDATE {self.table} SET "label" = \'{label}\', {assignments} WHERE "id" = {row_id}'
        )

    def delete(self, row_id: int) -> None:
        self.source.execute(f'DELETE FROM {self.table} WHERE "id" = {row_id}')
        self.ids.remove(row_id)


@pytest.fixture
def events(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Events, Cache]]:
    kind: str = request.param
    with source_db(kind, tmp_path) as source, cache_of(source, tmp_path) as cache:
        table = Events(source, kind)
        yield table, cache


SOURCES = pytest.mark.parametrize("events", ["postgres", "mariadb"], indirect=True)


@SOURCES
@pytest.mark.parametrize("cursor", CURSORS)
def test_random_appends_keep_the_cache_equal_to_the_source(
    events: tuple[Events, Cache], cursor: str
) -> None:
    table, cache = events
    rng = random.Random(f"append-{table.kind}-{cursor}")
    cache.compact_after_files = 3
    step = 0
    table.insert(step, 3)
    cache.discover()
    cache.set_policy("events", mode="append", cursor_column=cursor)
    assert not cache.refresh("events").incremental
    compactions = 0
    for _ in range(12):
        step += rng.choice([0, 0, 1, 2])  # often the same value as the mark: the boundary
        table.insert(step, rng.randint(0, 4))
        result = cache.refresh("events")
        assert result.incremental and not result.superseded
        compactions += result.compacted
        cache.assert_equal_to_source("events")
    assert compactions > 0
    assert cache.refresh("events").rows_synced == 0  # nothing new: no file, no duplicate
    cache.assert_equal_to_source("events")


@SOURCES
@pytest.mark.parametrize("cursor", CURSORS)
def test_random_updates_merge_to_the_latest_row_of_every_key(
    events: tuple[Events, Cache], cursor: str
) -> None:
    table, cache = events
    rng = random.Random(f"merge-{table.kind}-{cursor}")
    cache.compact_after_files = 3
    step = 0
    table.insert(step, 5)
    cache.discover()
    cache.set_policy("events", mode="merge", cursor_column=cursor)  # the key: the source's
    assert not cache.refresh("events").incremental
    deleted = 0
    for round_number in range(12):
        step += rng.choice([0, 1, 1, 2])
        for row_id in rng.sample(table.ids, k=min(3, len(table.ids))):
            table.update(row_id, step, f"v{round_number}")
        table.insert(step, rng.randint(0, 2))
        if rng.random() < 0.3:
            table.delete(rng.choice(table.ids))
            deleted += 1
        result = cache.refresh("events")
        assert result.incremental and not result.superseded
        missing, extra = cache.differences("events")
        assert missing == []
        # A deleted row stays cached until a full read: an incremental read cannot see it.
        assert len(extra) <= deleted
    assert deleted > 0
    full = cache.refresh("events", full=True)
    assert not full.incremental and full.files == 1
    cache.assert_equal_to_source("events")


@SOURCES
def test_null_cursors_wait_for_a_full_refresh(events: tuple[Events, Cache]) -> None:
    table, cache = events
    table.insert(1, 2)
    cache.discover()
    cache.set_policy("events", mode="append", cursor_column="at")
    cache.refresh("events")
    table.insert(None, 2)
    table.insert(2, 1)
    assert cache.refresh("events").rows_synced == 1
    missing, extra = cache.differences("events")
    assert [row[0] for row in missing] == [3, 4] and extra == []
    assert cache.refresh("events", full=True).rows_synced == 5
    cache.assert_equal_to_source("events")


@SOURCES
def test_rows_committed_late_are_merged_within_the_lookback(events: tuple[Events, Cache]) -> None:
    table, cache = events
    table.insert(10, 3)
    cache.discover()
    cache.set_policy("events", mode="merge", cursor_column="at_tz", lookback_seconds=600)
    cache.refresh("events")
    table.update(1, 20, "on time")
    cache.refresh("events")  # the mark is now step 20
    # Committed after that refresh, with a cursor 5 minutes before the mark: within the lookback.
    table.update(2, 15, "late")
    result = cache.refresh("events")
    assert (result.incremental, result.rows_synced) == (True, 1)
    cache.assert_equal_to_source("events")
    # Older than the lookback: an incremental read cannot see it; a full read does.
    table.update(3, 5, "too late")
    assert cache.refresh("events").rows_synced == 0
    assert len(cache.differences("events")[0]) == 1
    cache.refresh("events", full=True)
    cache.assert_equal_to_source("events")


@pytest.mark.parametrize("events", ["postgres"], indirect=True)
def test_two_refreshes_read_against_one_snapshot_never_both_land(
    events: tuple[Events, Cache],
) -> None:
    table, cache = events
    table.insert(1, 2)
    cache.discover()
    cache.set_policy("events", mode="append", cursor_column="n")
    cache.refresh("events")
    before = cache.snapshot("events")
    table.insert(2, 3)
    first = cache.refresh("events")
    second = cache.refresh("events", based_on=before)  # read against the replaced snapshot
    assert (first.superseded, first.rows_synced) == (False, 3)
    assert (second.superseded, second.rows_synced) == (True, 3)
    cache.assert_equal_to_source("events")
    assert len(cache.snapshot("events").files) == 2
    # The superseded delta is queued at once; nothing references it.
    assert {d.path for d in cache.catalog.list_deletions()} <= {
        f.path for f in cache.storage.list_files()
    } - set(cache.snapshot("events").files)


@pytest.mark.parametrize("events", ["postgres", "duckdb"], indirect=True)
def test_a_schema_change_makes_the_next_refresh_full(events: tuple[Events, Cache]) -> None:
    table, cache = events
    table.insert(1, 2)
    cache.discover()
    cache.set_policy("events", mode="append", cursor_column="n")
    cache.refresh("events")
    table.source.execute(f'ALTER TABLE {table.table} ADD COLUMN "extra" integer')
    table.insert(2, 1)
    cache.discover()
    result = cache.refresh("events")
    assert (result.incremental, result.reason) == (False, "the source's schema changed")
    cache.assert_equal_to_source("events")
    table.insert(3, 1)
    assert cache.refresh("events").incremental
    cache.assert_equal_to_source("events")


@pytest.mark.parametrize("events", ["duckdb"], indirect=True)
def test_an_empty_table_is_read_in_full_until_it_has_a_cursor_value(
    events: tuple[Events, Cache],
) -> None:
    table, cache = events
    cache.discover()
    cache.set_policy("events", mode="append", cursor_column="n")
    assert cache.refresh("events").rows_synced == 0
    table.insert(None, 1)
    second = cache.refresh("events")
    assert (second.incremental, second.rows_synced) == (False, 1)
    table.insert(1, 1)
    assert not cache.refresh("events").incremental
    table.insert(2, 1)
    assert cache.refresh("events").incremental
    cache.assert_equal_to_source("events")


@pytest.mark.parametrize("events", ["postgres"], indirect=True)
def test_concurrent_incremental_refreshes_never_add_a_row_twice(
    events: tuple[Events, Cache],
) -> None:
    table, cache = events
    table.insert(1, 3)
    cache.discover()
    cache.set_policy("events", mode="append", cursor_column="n")
    cache.refresh("events")
    superseded = 0
    for step in range(2, 8):
        table.insert(step, 2)
        with ThreadPoolExecutor(max_workers=3) as pool:
            results = list(pool.map(lambda _: cache.refresh("events"), range(3)))
        superseded += sum(r.superseded for r in results)
        cache.assert_equal_to_source("events")
    print(f"{superseded} of 18 concurrent refreshes were superseded")
