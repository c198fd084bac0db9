"""The statements behind incremental snapshots: delta files and the high-water mark.

Each function runs inside a transaction the Catalog opened; none commits.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from catalog.records import Increments
from catalog.schema import snapshot_files, table_increments


def read_increments(conn: Connection, table_ids: Sequence[int]) -> dict[int, Increments]:
    rows = conn.execute(select(table_increments).where(table_increments.c.table_id.in_(table_ids)))
    return {row.table_id: _increments(row) for row in rows}


def replace_increments(conn: Connection, table_id: int, increments: Increments | None) -> None:
    """Record how the table's new base was read (None: the table is no longer incremental)."""
    conn.execute(delete(table_increments).where(table_increments.c.table_id == table_id))
    if increments is not None:
        conn.execute(
            insert(table_increments).values(
                table_id=table_id,
                mode=increments.mode,
                cursor_column=increments.cursor_column,
                primary_key_json=json.dumps(list(increments.primary_key)),
                high_water_mark=increments.high_water_mark,
                full_started_at=increments.full_started_at,
                schema_changed=False,
            )
        )


def advance_mark(conn: Connection, table_id: int, high_water_mark: str | None) -> None:
    conn.execute(
        update(table_increments)
        .where(table_increments.c.table_id == table_id)
        .values(high_water_mark=high_water_mark)
    )


def mark_schema_changed(conn: Connection, table_ids: Sequence[int]) -> None:
    if table_ids:
        conn.execute(
            update(table_increments)
            .where(table_increments.c.table_id.in_(table_ids))
            .values(schema_changed=True)
        )


def delta_paths(conn: Connection, table_ids: Sequence[int] | None = None) -> dict[int, list[str]]:
    """The delta files of each table, in the order they were added (all tables: None)."""
    query = select(snapshot_files.c.table_id, snapshot_files.c.path).order_by(
        snapshot_files.c.table_id, snapshot_files.c.seq
    )
    if table_ids is not None:
        query = query.where(snapshot_files.c.table_id.in_(table_ids))
    found: dict[int, list[str]] = defaultdict(list)
    for table_id, path in conn.execute(query):
        found[table_id].append(path)
    return found


def add_delta(
    conn: Connection, table_id: int, path: str, row_count: int, created_at: datetime
) -> None:
    last = conn.execute(
        select(func.max(snapshot_files.c.seq)).where(snapshot_files.c.table_id == table_id)
    ).scalar_one()
    conn.execute(
        insert(snapshot_files).values(
            table_id=table_id,
            seq=(last or 0) + 1,
            path=path,
            row_count=row_count,
            created_at=created_at,
        )
    )


def drop_deltas(conn: Connection, table_id: int) -> list[str]:
    """Remove the table's delta files from its snapshot; returns their paths, to be queued."""
    paths = delta_paths(conn, [table_id]).get(table_id, [])
    conn.execute(delete(snapshot_files).where(snapshot_files.c.table_id == table_id))
    return paths


def _increments(row: Row[Any]) -> Increments:
    return Increments(
        mode=row.mode,
        cursor_column=row.cursor_column,
        primary_key=tuple(json.loads(row.primary_key_json)),
        high_water_mark=row.high_water_mark,
        full_started_at=row.full_started_at,
        schema_changed=bool(row.schema_changed),
    )
