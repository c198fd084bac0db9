"""Refresh policies: how fresh a table should be, and how it is refreshed (full or by a cursor).

A connection has a default policy and a table may override any of its fields; a field a
level leaves out inherits, one it sets to null clears the inherited value. A table that sets
its own `mode` drops the inherited fields its mode has no use for (a table set to `full` under
an `append` default keeps no cursor).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from catalog import Catalog, TableRecord
from sources import is_cursor_type, schema_from_json


class RefreshMode(StrEnum):
    FULL = "full"
    APPEND = "append"
    MERGE = "merge"


# The fields each mode reads besides max_staleness_seconds.
MODE_FIELDS: dict[RefreshMode, tuple[str, ...]] = {
    RefreshMode.FULL: (),
    RefreshMode.APPEND: ("cursor_column",),
    RefreshMode.MERGE: (
        "cursor_column",
        "primary_key",
        "lookback_seconds",
        "full_refresh_every_seconds",
    ),
}
_INCREMENTAL_FIELDS = MODE_FIELDS[RefreshMode.MERGE]


class PolicyError(ValueError):
    """A policy that cannot apply to a table; the message names the table and the column."""


# Ten years: any longer interval is a mistake, and datetime arithmetic with it could overflow.
MAX_SECONDS = 10 * 366 * 86_400


class RefreshPolicy(BaseModel):
    """One level's policy (a connection's default or a table's override)."""

    model_config = ConfigDict(extra="forbid")

    max_staleness_seconds: float | None = Field(
        None, gt=0, le=MAX_SECONDS, description="Target age; null: refreshed only when asked"
    )
    mode: RefreshMode | None = Field(None, description="full (default), append or merge")
    cursor_column: str | None = Field(
        None, description="append/merge: the column whose growth marks new or changed rows"
    )
    primary_key: list[str] | None = Field(
        None, min_length=1, description="merge: the key (default: the source's primary key)"
    )
    lookback_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_SECONDS,
        description="merge: also re-read rows this much older than the mark",
    )
    full_refresh_every_seconds: float | None = Field(
        None,
        gt=0,
        le=MAX_SECONDS,
        description="merge: a periodic full refresh, which also brings deletions",
    )

    def over(self, inherited: RefreshPolicy) -> RefreshPolicy:
        """This level's fields where it sets them, the inherited ones elsewhere."""
        below = inherited.model_dump(exclude_unset=True)
        if self.mode is not None and self.mode is not inherited.mode:
            for name in _INCREMENTAL_FIELDS:
                if name not in MODE_FIELDS[self.mode]:
                    below.pop(name, None)
        return RefreshPolicy.model_validate({**below, **self.model_dump(exclude_unset=True)})

    def to_json(self) -> str:
        return self.model_dump_json(exclude_unset=True)

    @classmethod
    def from_json(cls, text: str | None) -> RefreshPolicy:
        return cls() if text is None else cls.model_validate_json(text)


def effective_policy(connection_json: str | None, table_json: str | None) -> RefreshPolicy:
    """A table's policy: its override over its connection's default (as the catalog stores them)."""
    return RefreshPolicy.from_json(table_json).over(RefreshPolicy.from_json(connection_json))


@dataclass(frozen=True)
class TablePolicy:
    """A policy resolved for one table: every field decided and checked against its columns."""

    mode: RefreshMode = RefreshMode.FULL
    max_staleness_seconds: float | None = None
    cursor_column: str | None = None
    primary_key: tuple[str, ...] = ()
    lookback_seconds: float = 0.0
    full_refresh_every_seconds: float | None = None

    @property
    def incremental(self) -> bool:
        return self.mode is not RefreshMode.FULL


def check_fields(policy: RefreshPolicy, where: str) -> RefreshMode:
    """Check that `policy` sets only fields its mode uses; returns the mode.

    Raises PolicyError starting with `where` (e.g. "table public.t").
    """
    mode = policy.mode or RefreshMode.FULL
    extras = [
        name
        for name in _INCREMENTAL_FIELDS
        if name not in MODE_FIELDS[mode] and getattr(policy, name) is not None
    ]
    if extras:
        modes = " and ".join(m.value for m in RefreshMode if set(extras) <= set(MODE_FIELDS[m]))
        raise PolicyError(f"{where}: {', '.join(extras)} apply to mode {modes} only")
    return mode


def check_connection_policy(
    policy: RefreshPolicy, tables: list[TableRecord], overrides: Mapping[int, str]
) -> None:
    """Check a connection's default against itself and against every table it would apply to.

    The sources' own keys are not looked up: a merge table without a key fails at its refresh.
    """
    check_fields(policy, "the connection's policy")
    for table in tables:
        effective = RefreshPolicy.from_json(overrides.get(table.id)).over(policy)
        check_policy(
            effective,
            f"{table.schema_name}.{table.table_name}",
            schema_from_json(table.arrow_schema_json),
        )


def check_policy(policy: RefreshPolicy, table: str, schema: pa.Schema) -> None:
    """Check `policy` against the table's columns, all but the source's own key.

    Raises PolicyError naming the table and the field or column that does not fit.
    """
    resolve_policy(policy, table, schema, lambda: None)


def resolve_policy(
    policy: RefreshPolicy,
    table: str,
    schema: pa.Schema,
    source_key: Callable[[], list[str] | None],
) -> TablePolicy:
    """Check `policy` against the table's columns and decide every field.

    `source_key` returns the key the source declares; it is called only for a merge that names
    no key, and None from it means "not known here" (the key check is left out).
    Raises PolicyError naming the table and the column that does not fit.
    """
    mode = check_fields(policy, f"table {table}")
    if mode is RefreshMode.FULL:
        return TablePolicy(max_staleness_seconds=policy.max_staleness_seconds)
    fields = {f.name: f for f in schema}
    cursor = _cursor(policy.cursor_column, mode, table, fields)
    if mode is RefreshMode.APPEND:
        return TablePolicy(mode, policy.max_staleness_seconds, cursor)
    key = tuple(policy.primary_key or ())
    if not key:
        declared = source_key()
        if declared is not None and not declared:
            raise PolicyError(
                f"table {table}: mode merge needs a primary_key (the source declares none)"
            )
        key = tuple(declared or ())
    for column in key:
        _require_key_column(column, table, fields)
    lookback = policy.lookback_seconds or 0.0
    cursor_type = fields[cursor].type
    if lookback and not (pa.types.is_timestamp(cursor_type) or pa.types.is_date(cursor_type)):
        raise PolicyError(
            f"table {table}: lookback_seconds needs a timestamp or date cursor, and "
            f"{cursor!r} is {cursor_type}"
        )
    return TablePolicy(
        mode,
        policy.max_staleness_seconds,
        cursor,
        key,
        lookback,
        policy.full_refresh_every_seconds,
    )


def _cursor(
    column: str | None, mode: RefreshMode, table: str, fields: Mapping[str, pa.Field]
) -> str:
    if column is None:
        raise PolicyError(f"table {table}: mode {mode.value} needs a cursor_column")
    if column not in fields:
        raise PolicyError(f"table {table}: cursor column {column!r} does not exist")
    cursor_type = fields[column].type
    if not is_cursor_type(cursor_type):
        raise PolicyError(
            f"table {table}: cursor column {column!r} is {cursor_type}; a cursor is "
            "an integer, decimal, date or timestamp"
        )
    if (
        mode is RefreshMode.APPEND
        and pa.types.is_timestamp(cursor_type)
        and cursor_type.unit == "ns"
    ):
        # The mark keeps microseconds: rows past it by less than 1 µs would be read twice.
        raise PolicyError(
            f"table {table}: cursor column {column!r} has nanoseconds, finer than the "
            "high-water mark (microseconds); use mode merge for it"
        )
    return column


def _require_key_column(column: str, table: str, fields: Mapping[str, pa.Field]) -> None:
    if column not in fields:
        raise PolicyError(f"table {table}: primary key column {column!r} does not exist")
    key_type = fields[column].type
    if (
        pa.types.is_nested(key_type)
        or pa.types.is_floating(key_type)
        or pa.types.is_decimal256(key_type)
    ):
        raise PolicyError(
            f"table {table}: primary key column {column!r} is {key_type}; a key column is "
            "a scalar that compares exactly (not a float, a decimal of more than 38 digits, "
            "a list, struct or map)"
        )


def table_policy(
    catalog: Catalog, table: TableRecord, source_key: Callable[[], list[str] | None]
) -> TablePolicy:
    """The policy a table refreshes by: its override over its connection's default, resolved."""
    by_connection, by_table = catalog.policies(table.connection_id, table.id)
    policy = effective_policy(by_connection.get(table.connection_id), by_table.get(table.id))
    return resolve_policy(
        policy,
        f"{table.schema_name}.{table.table_name}",
        schema_from_json(table.arrow_schema_json),
        source_key,
    )
