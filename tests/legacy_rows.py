"""Rows written as an older catalog revision wrote them, for the tests of upgrades in place."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, column, insert, table

from catalog.schema import UTCDateTime


def insert_connection(
    conn: Connection, connection_id: int, name: str, created_at: datetime
) -> None:
    """A DuckDB connection row, in the columns every revision since 0001 has."""
    conn.execute(
        insert(
            table(
                "connections",
                column("id"),
                column("name"),
                column("source_type"),
                column("config_json"),
                column("created_at", UTCDateTime),
            )
        ).values(
            id=connection_id,
            name=name,
            source_type="duckdb",
            config_json="{}",
            created_at=created_at,
        )
    )
