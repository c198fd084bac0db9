"""The rows at the mark the cache already holds: Python and DuckDB agree, as multisets (append)
and as the latest row of each key (merge), NULLs, NaN, lists and structs included."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from core.boundary import _unseen_in_duckdb, _unseen_in_python, unseen_rows

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64()),
        pa.field("x", pa.float64()),
        pa.field("tags", pa.list_(pa.string())),
        pa.field("point", pa.struct([pa.field("a", pa.int32()), pa.field("b", pa.string())])),
    ]
)


def random_rows(rng: random.Random, count: int) -> list[dict[str, object]]:
    def value() -> dict[str, object]:
        return {
            "id": rng.choice([1, 2, 3, None]),
            "x": rng.choice([0.5, float("nan"), None, -1.0]),
            "tags": rng.choice([["a"], ["a", "b"], [], None]),
            "point": rng.choice([{"a": 1, "b": "p"}, {"a": 1, "b": None}, None]),
        }

    return [value() for _ in range(count)]


def with_rank(rows: list[dict[str, object]], rng: random.Random) -> pa.Table:
    """Cached rows, each in a file of its own, in random order: a key's latest row is unique."""
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    ranks = list(range(len(rows)))
    rng.shuffle(ranks)
    return table.append_column("__freshcache_rank", pa.array(ranks, pa.int32()))


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("merge_key", [(), ("id",)])
def test_python_and_duckdb_find_the_same_unseen_rows(seed: int, merge_key: tuple[str, ...]) -> None:
    rng = random.Random(seed)
    read = pa.Table.from_pylist(random_rows(rng, rng.randint(1, 12)), schema=SCHEMA)
    cached = with_rank(random_rows(rng, rng.randint(1, 12)) + read.slice(0, 3).to_pylist(), rng)
    in_python = _unseen_in_python(read, cached, merge_key)
    in_duckdb = _unseen_in_duckdb(read, cached, merge_key).to_pylist()
    assert in_python == in_duckdb


def test_equal_rows_count_as_many_times_as_they_occur() -> None:
    row = {"id": 1, "x": float("nan"), "tags": ["a"], "point": {"a": 1, "b": None}}
    read = pa.Table.from_pylist([row, row, row], schema=SCHEMA)
    cached = with_rank([row], random.Random(0))
    assert unseen_rows(read, cached, ()).num_rows == 2


def test_a_merge_row_is_unseen_unless_it_equals_its_keys_latest_cached_row() -> None:
    old = {"id": 1, "x": 1.0, "tags": None, "point": None}
    new = {"id": 1, "x": 2.0, "tags": None, "point": None}
    cached = pa.Table.from_pylist([old, new], schema=SCHEMA).append_column(
        "__freshcache_rank", pa.array([0, 1], pa.int32())
    )
    # The source went back to the old version: it differs from the latest cached row.
    reverted = pa.Table.from_pylist([old], schema=SCHEMA)
    assert unseen_rows(reverted, cached, ("id",)).to_pylist() == [old]
    assert unseen_rows(pa.Table.from_pylist([new], schema=SCHEMA), cached, ("id",)).num_rows == 0
