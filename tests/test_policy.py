"""Policies: inheritance from the connection's default, and the checks against a table's columns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from catalog import Increments, Snapshot, TableRecord
from core import watermark
from core.planning import plan_refresh
from core.policy import (
    PolicyError,
    RefreshMode,
    RefreshPolicy,
    TablePolicy,
    check_policy,
    effective_policy,
    resolve_policy,
)

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("updated_at", pa.timestamp("us", tz="UTC")),
        pa.field("day", pa.date32()),
        pa.field("score", pa.float64()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("at_ns", pa.timestamp("ns")),
    ]
)
NOW = dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


def resolve(key: list[str] | None = None, **fields: object) -> TablePolicy:
    return resolve_policy(RefreshPolicy.model_validate(fields), "public.t", SCHEMA, lambda: key)


def test_a_table_inherits_what_it_leaves_out_and_clears_what_it_sets_to_null() -> None:
    connection = '{"max_staleness_seconds": 60, "mode": "append", "cursor_column": "id"}'
    assert effective_policy(connection, None) == RefreshPolicy(
        max_staleness_seconds=60, mode=RefreshMode.APPEND, cursor_column="id"
    )
    cleared = effective_policy(connection, '{"max_staleness_seconds": null}')
    assert cleared.max_staleness_seconds is None and cleared.cursor_column == "id"
    # A table set to full keeps nothing of the incremental default.
    full = effective_policy(connection, '{"mode": "full"}')
    assert resolve_policy(full, "public.t", SCHEMA, lambda: None) == TablePolicy(
        max_staleness_seconds=60
    )
    # A table set to merge keeps the inherited cursor.
    merged = effective_policy(connection, '{"mode": "merge", "primary_key": ["id"]}')
    assert merged.cursor_column == "id"


def test_merge_takes_the_source_key_unless_the_policy_names_one() -> None:
    assert resolve(["id"], mode="merge", cursor_column="updated_at").primary_key == ("id",)
    named = resolve(["id"], mode="merge", cursor_column="updated_at", primary_key=["name", "id"])
    assert named.primary_key == ("name", "id")
    with pytest.raises(PolicyError, match="the source declares none"):
        resolve([], mode="merge", cursor_column="updated_at")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "append"}, "public.t: mode append needs a cursor_column"),
        ({"mode": "append", "cursor_column": "nope"}, "cursor column 'nope' does not exist"),
        ({"mode": "append", "cursor_column": "name"}, "cursor column 'name' is string"),
        ({"mode": "merge", "cursor_column": "score"}, "cursor column 'score' is double"),
        ({"mode": "append", "cursor_column": "at_ns"}, "'at_ns' has nanoseconds"),
        (
            {"mode": "merge", "cursor_column": "id", "primary_key": ["nope"]},
            "primary key column 'nope' does not exist",
        ),
        (
            {"mode": "merge", "cursor_column": "id", "primary_key": ["tags"]},
            "primary key column 'tags' is list<item: string>",
        ),
        (
            {"mode": "merge", "cursor_column": "id", "primary_key": ["id"], "lookback_seconds": 5},
            "lookback_seconds needs a timestamp or date cursor, and 'id' is int64",
        ),
        ({"mode": "full", "cursor_column": "id"}, "cursor_column apply to mode append and merge"),
        (
            {"mode": "append", "cursor_column": "id", "full_refresh_every_seconds": 60},
            "full_refresh_every_seconds apply to mode merge only",
        ),
    ],
)
def test_a_policy_that_does_not_fit_the_table_names_the_column(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_policy(RefreshPolicy.model_validate(fields), "public.t", SCHEMA)


def test_merge_by_nanoseconds_and_dates_is_allowed() -> None:
    assert resolve(["id"], mode="merge", cursor_column="at_ns").cursor_column == "at_ns"
    lookback = resolve(["id"], mode="merge", cursor_column="day", lookback_seconds=1)
    assert lookback.lookback_seconds == 1


@pytest.mark.parametrize(
    "value",
    [
        7,
        -(2**63),
        Decimal("12.50"),
        dt.date(2026, 1, 31),
        dt.datetime(2026, 1, 31, 4, 5, 6, 789),
        dt.datetime(2026, 1, 31, 4, 5, 6, 789, tzinfo=dt.UTC),
    ],
)
def test_a_mark_round_trips_through_its_json(value: object) -> None:
    text = watermark.to_json(value)  # type: ignore[arg-type]
    assert watermark.from_json(text) == value
    assert type(watermark.from_json(text)) is type(value)


def test_a_lookback_moves_a_date_mark_by_whole_days() -> None:
    assert watermark.minus_seconds(dt.date(2026, 1, 31), 1) == dt.date(2026, 1, 30)
    assert watermark.minus_seconds(dt.date(2026, 1, 31), 86_401) == dt.date(2026, 1, 29)
    at = dt.datetime(2026, 1, 31, 12)
    assert watermark.minus_seconds(at, 90) == dt.datetime(2026, 1, 31, 11, 58, 30)


def test_nanosecond_cursors_compare_at_the_marks_precision() -> None:
    column = pa.array([1_000, 1_999, 2_000, None], pa.timestamp("ns"))
    mark = watermark.greatest(column.slice(0, 2))
    assert mark == dt.datetime(1970, 1, 1, 0, 0, 0, 1)
    assert watermark.at_or_before(column, mark).to_pylist() == [True, True, False, None]


def snapshot(increments: Increments | None, path: str | None = "/c/base.parquet") -> Snapshot:
    record = TableRecord(1, 1, "public", "t", "[]", path, NOW, NOW)
    return Snapshot(record, (), increments)


def test_the_plan_reads_in_full_unless_the_snapshot_was_read_the_way_the_policy_reads() -> None:
    policy = TablePolicy(RefreshMode.MERGE, None, "updated_at", ("id",), 0, 3600)
    read = Increments("merge", "updated_at", ("id",), '{"int": "1"}', NOW)

    def reason(snap: Snapshot, now: dt.datetime = NOW, **kw: bool) -> str:
        plan = plan_refresh(policy, snap, now, **kw)
        return "incremental" if plan.incremental else plan.reason

    assert reason(snapshot(read)) == "incremental"
    assert reason(snapshot(read), full=True) == "a full refresh was asked for"
    assert reason(snapshot(None)) == "first load of an incremental table"
    assert reason(snapshot(read, path=None)) == "first load of an incremental table"
    changed = Increments("merge", "updated_at", ("id",), '{"int": "1"}', NOW, True)
    assert reason(snapshot(changed)) == "the source's schema changed"
    other = Increments("append", "updated_at", (), '{"int": "1"}', NOW)
    assert reason(snapshot(other)) == "the policy changed how the table is read"
    empty = Increments("merge", "updated_at", ("id",), None, NOW)
    assert reason(snapshot(empty)).startswith("no cursor value read yet")
    later = NOW + dt.timedelta(seconds=3600)
    assert reason(snapshot(read), later) == "the periodic full refresh is due"
