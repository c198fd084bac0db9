"""Table metadata and the canonical JSON form of an Arrow schema."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

_PRIMITIVES: dict[str, pa.DataType] = {
    str(t): t
    for t in (
        pa.null(),
        pa.bool_(),
        pa.int8(),
        pa.int16(),
        pa.int32(),
        pa.int64(),
        pa.uint8(),
        pa.uint16(),
        pa.uint32(),
        pa.uint64(),
        pa.float16(),
        pa.float32(),
        pa.float64(),
        pa.string(),
        pa.large_string(),
        pa.binary(),
        pa.large_binary(),
        pa.date32(),
        pa.date64(),
        pa.month_day_nano_interval(),
    )
}


@dataclass(frozen=True)
class TableMetadata:
    schema_name: str
    table_name: str
    arrow_schema: pa.Schema


@dataclass(frozen=True)
class ColumnChanges:
    """Column names added, removed, or changed (type or nullability) between two schemas."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


def schema_to_json(schema: pa.Schema) -> str:
    """Canonical JSON: equal schemas give identical strings, any column change a different one."""
    return json.dumps([_field_to_json(f) for f in schema], sort_keys=True, separators=(",", ":"))


def schema_from_json(text: str) -> pa.Schema:
    """The inverse of `schema_to_json`."""
    return pa.schema([_field_from_json(f) for f in json.loads(text)])


def schema_diff(old: pa.Schema, new: pa.Schema) -> ColumnChanges:
    old_fields = {f.name: f for f in old}
    new_fields = {f.name: f for f in new}
    return ColumnChanges(
        added=[name for name in new_fields if name not in old_fields],
        removed=[name for name in old_fields if name not in new_fields],
        changed=[
            name
            for name, f in new_fields.items()
            if name in old_fields and not f.equals(old_fields[name])
        ],
    )


def _field_to_json(f: pa.Field) -> dict[str, Any]:
    return {"name": f.name, "type": _type_to_json(f.type), "nullable": f.nullable}


def _field_from_json(data: dict[str, Any]) -> pa.Field:
    return pa.field(data["name"], _type_from_json(data["type"]), nullable=data["nullable"])


def _type_to_json(t: pa.DataType) -> str | dict[str, Any]:
    if str(t) in _PRIMITIVES and _PRIMITIVES[str(t)] == t:
        return str(t)
    if pa.types.is_decimal(t):
        return {"id": f"decimal{t.bit_width}", "precision": t.precision, "scale": t.scale}
    if pa.types.is_timestamp(t):
        return {"id": "timestamp", "unit": t.unit, "tz": t.tz}
    if pa.types.is_time32(t) or pa.types.is_time64(t):
        return {"id": f"time{t.bit_width}", "unit": t.unit}
    if pa.types.is_duration(t):
        return {"id": "duration", "unit": t.unit}
    if pa.types.is_fixed_size_binary(t):
        return {"id": "fixed_size_binary", "byte_width": t.byte_width}
    if pa.types.is_map(t):
        return {
            "id": "map",
            "key": _field_to_json(t.key_field),
            "item": _field_to_json(t.item_field),
            "keys_sorted": t.keys_sorted,
        }
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return {
            "id": "large_list" if pa.types.is_large_list(t) else "list",
            "item": _field_to_json(t.value_field),
        }
    if pa.types.is_fixed_size_list(t):
        return {"id": "fixed_size_list", "item": _field_to_json(t.value_field), "size": t.list_size}
    if pa.types.is_struct(t):
        return {"id": "struct", "fields": [_field_to_json(f) for f in t.fields]}
    if pa.types.is_dictionary(t):
        return {
            "id": "dictionary",
            "index": _type_to_json(t.index_type),
            "value": _type_to_json(t.value_type),
            "ordered": t.ordered,
        }
    raise ValueError(f"no canonical JSON form for Arrow type {t}")


def _type_from_json(data: str | dict[str, Any]) -> pa.DataType:
    if isinstance(data, str):
        return _PRIMITIVES[data]
    kind = data["id"]
    if kind in ("decimal32", "decimal64", "decimal128", "decimal256"):
        return getattr(pa, kind)(data["precision"], data["scale"])
    if kind == "timestamp":
        return pa.timestamp(data["unit"], tz=data["tz"])
    if kind in ("time32", "time64", "duration"):
        return getattr(pa, kind)(data["unit"])
    if kind == "fixed_size_binary":
        return pa.binary(data["byte_width"])
    if kind == "map":
        key, item = _field_from_json(data["key"]), _field_from_json(data["item"])
        return pa.map_(key, item, keys_sorted=data["keys_sorted"])
    if kind == "list":
        return pa.list_(_field_from_json(data["item"]))
    if kind == "large_list":
        return pa.large_list(_field_from_json(data["item"]))
    if kind == "fixed_size_list":
        return pa.list_(_field_from_json(data["item"]), data["size"])
    if kind == "struct":
        return pa.struct([_field_from_json(f) for f in data["fields"]])
    if kind == "dictionary":
        index, value = _type_from_json(data["index"]), _type_from_json(data["value"])
        return pa.dictionary(index, value, ordered=data["ordered"])
    raise ValueError(f"unknown Arrow type in schema JSON: {data!r}")
