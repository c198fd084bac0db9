from __future__ import annotations

import pyarrow as pa
import pytest

from sources import ColumnChanges, schema_diff, schema_from_json, schema_to_json

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        ("price", pa.decimal128(10, 2)),
        ("big", pa.decimal256(60, 5)),
        ("at", pa.timestamp("us", tz="UTC")),
        ("local", pa.timestamp("ns")),
        ("t", pa.time64("us")),
        ("day", pa.date32()),
        ("tags", pa.list_(pa.string())),
        ("attrs", pa.struct([("a", pa.int8()), ("b", pa.list_(pa.float32()))])),
        ("m", pa.map_(pa.string(), pa.int32())),
        ("blob", pa.binary()),
        ("é ✓", pa.string()),
    ]
)


def test_json_round_trips_exactly() -> None:
    text = schema_to_json(SCHEMA)
    assert schema_from_json(text).equals(SCHEMA)
    assert schema_to_json(schema_from_json(text)) == text


def test_equal_schemas_give_identical_strings() -> None:
    rebuilt = pa.schema(list(SCHEMA)).with_metadata({b"k": b"v"})
    assert schema_to_json(rebuilt) == schema_to_json(SCHEMA)


@pytest.mark.parametrize(
    "changed",
    [
        SCHEMA.append(pa.field("extra", pa.int8())),
        SCHEMA.remove(1),
        SCHEMA.set(1, pa.field("cost", pa.decimal128(10, 2))),
        SCHEMA.set(1, pa.field("price", pa.decimal128(12, 2))),
        SCHEMA.set(0, pa.field("id", pa.int64(), nullable=True)),
        SCHEMA.set(3, pa.field("at", pa.timestamp("us"))),
        pa.schema([SCHEMA.field(1), SCHEMA.field(0), *list(SCHEMA)[2:]]),
        SCHEMA.set(7, pa.field("tags", pa.list_(pa.large_string()))),
    ],
)
def test_any_column_change_gives_another_string(changed: pa.Schema) -> None:
    assert schema_to_json(changed) != schema_to_json(SCHEMA)


def test_diff_names_added_removed_and_changed_columns() -> None:
    old = pa.schema([("a", pa.int32()), ("b", pa.string()), ("c", pa.date32())])
    new = pa.schema([("a", pa.int64()), ("c", pa.date32()), ("d", pa.bool_())])
    assert schema_diff(old, new) == ColumnChanges(added=["d"], removed=["b"], changed=["a"])
    assert schema_diff(old, old) == ColumnChanges()
