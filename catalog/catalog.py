"""The Catalog: every read and write of freshcache's own state, one transaction per operation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from catalog import snapshots
from catalog.engine import WRITE_OPTION, create_catalog_engine
from catalog.errors import ConnectionNotFoundError, DuplicateConnectionError, TableNotFoundError
from catalog.migrate import upgrade_to_head
from catalog.records import (
    ConnectionRecord,
    DiscoveredTable,
    Increments,
    PendingDeletion,
    Snapshot,
    SwapResult,
    TableRecord,
    TableSync,
)
from catalog.schema import (
    connection_policies,
    connections,
    pending_deletions,
    snapshot_files,
    table_policies,
    tables,
)

Clock = Callable[[], datetime]

# Ids are `Integer` columns, 32-bit in PostgreSQL: a larger one names no row on either backend
# (PostgreSQL would refuse to compare it with an integer column).
_MAX_ID = 2**31 - 1


def utc_now() -> datetime:
    return datetime.now(UTC)


class Catalog:
    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock

    @classmethod
    def from_url(cls, url: str, *, migrate: bool = True, clock: Clock = utc_now) -> Catalog:
        catalog = cls(create_catalog_engine(url), clock=clock)
        if migrate:
            catalog.migrate()
        return catalog

    def migrate(self) -> tuple[str | None, str | None]:
        return upgrade_to_head(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def _insert(self, table: Any) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    # -- connections -------------------------------------------------------------------------

    def add_connection(
        self, name: str, source_type: str, config: dict[str, Any]
    ) -> ConnectionRecord:
        created_at = self.clock()
        try:
            with self._write() as conn:
                new_id = conn.execute(
                    insert(connections)
                    .values(
                        name=name,
                        source_type=source_type,
                        config_json=json.dumps(config, sort_keys=True),
                        created_at=created_at,
                    )
                    .returning(connections.c.id)
                ).scalar_one()
        except IntegrityError as exc:
            raise DuplicateConnectionError(name) from exc
        return ConnectionRecord(new_id, name, source_type, config, created_at)

    def update_connection(
        self, connection_id: int, name: str, config: dict[str, Any]
    ) -> ConnectionRecord:
        """Rename a connection and replace its config (its tables are the caller's to sync)."""
        try:
            with self._write() as conn:
                _require_connection(conn, connection_id)
                row = conn.execute(
                    update(connections)
                    .where(connections.c.id == connection_id)
                    .values(name=name, config_json=json.dumps(config, sort_keys=True))
                    .returning(*connections.c)
                ).one()
        except IntegrityError as exc:
            raise DuplicateConnectionError(name) from exc
        return _connection(row)

    def get_connection(self, connection_id: int) -> ConnectionRecord:
        if not _is_id(connection_id):
            raise ConnectionNotFoundError(connection_id)
        with self._read() as conn:
            row = conn.execute(select(connections).where(connections.c.id == connection_id)).first()
        if row is None:
            raise ConnectionNotFoundError(connection_id)
        return _connection(row)

    def get_connection_by_name(self, name: str) -> ConnectionRecord:
        with self._read() as conn:
            row = conn.execute(select(connections).where(connections.c.name == name)).first()
        if row is None:
            raise ConnectionNotFoundError(name)
        return _connection(row)

    def list_connections(self) -> list[ConnectionRecord]:
        with self._read() as conn:
            rows = conn.execute(select(connections).order_by(connections.c.id)).all()
        return [_connection(row) for row in rows]

    def delete_connection(self, connection_id: int, *, delete_after: datetime) -> list[str]:
        """Delete a connection with its tables; their cache files are scheduled for deletion."""
        if not _is_id(connection_id):
            raise ConnectionNotFoundError(connection_id)
        with self._write() as conn:
            _require_connection(conn, connection_id)
            paths = list(
                conn.execute(
                    select(tables.c.parquet_path).where(
                        tables.c.connection_id == connection_id, tables.c.parquet_path.is_not(None)
                    )
                ).scalars()
            )
            ids = conn.execute(
                select(tables.c.id).where(tables.c.connection_id == connection_id)
            ).scalars()
            for deltas in snapshots.delta_paths(conn, list(ids)).values():
                paths += deltas
            conn.execute(delete(tables).where(tables.c.connection_id == connection_id))
            conn.execute(delete(connections).where(connections.c.id == connection_id))
            self._schedule(conn, paths, delete_after)
        return paths

    # -- tables ------------------------------------------------------------------------------

    def list_tables(self, connection_id: int | None = None) -> list[TableRecord]:
        query = select(tables).order_by(
            tables.c.connection_id, tables.c.schema_name, tables.c.table_name
        )
        if connection_id is not None:
            if not _is_id(connection_id):
                return []
            query = query.where(tables.c.connection_id == connection_id)
        with self._read() as conn:
            return [_table(row) for row in conn.execute(query)]

    def get_table(self, connection_id: int, schema_name: str, table_name: str) -> TableRecord:
        if not _is_id(connection_id):
            raise TableNotFoundError(connection_id, schema_name, table_name)
        with self._read() as conn:
            row = conn.execute(
                select(tables).where(_identity(connection_id, schema_name, table_name))
            ).first()
        if row is None:
            raise TableNotFoundError(connection_id, schema_name, table_name)
        return _table(row)

    def sync_tables(
        self,
        connection_id: int,
        discovered: Sequence[DiscoveredTable],
        *,
        delete_after: datetime,
        dry_run: bool = False,
    ) -> TableSync:
        """Apply one discovery in one transaction: upsert, delete stale, schedule their files."""
        with self._write() as conn:
            _require_connection(conn, connection_id)
            existing = {
                (row.schema_name, row.table_name): _table(row)
                for row in conn.execute(
                    select(tables).where(tables.c.connection_id == connection_id)
                )
            }
            found = {(t.schema_name, t.table_name): t for t in discovered}
            result = TableSync(
                added=[t for key, t in found.items() if key not in existing],
                removed=[t for key, t in existing.items() if key not in found],
                modified=[
                    (existing[key], t)
                    for key, t in found.items()
                    if key in existing and existing[key].arrow_schema_json != t.arrow_schema_json
                ],
                unchanged=sum(
                    1
                    for key, t in found.items()
                    if key in existing and existing[key].arrow_schema_json == t.arrow_schema_json
                ),
            )
            if dry_run:
                conn.rollback()
                return result
            self._upsert(conn, connection_id, result.added + [new for _, new in result.modified])
            snapshots.mark_schema_changed(conn, [old.id for old, _ in result.modified])
            self._delete_tables(conn, result.removed, delete_after)
        return result

    def swap(
        self,
        connection_id: int,
        schema_name: str,
        table_name: str,
        new_path: str,
        *,
        snapshot_started_at: datetime,
        delete_after: datetime,
        synced_at: datetime | None = None,
        increments: Increments | None = None,
    ) -> SwapResult:
        """Point a table at its new cache file and queue the files it replaces, atomically.

        The new file is the table's whole snapshot: its delta files leave it too, and
        `increments` records how the file was read when the table is incremental.
        Freshness never goes backwards: when the live file's snapshot started after this one's,
        the table is left as it is and the new file is queued for deletion instead (superseded).
        """
        synced_at = synced_at or self.clock()
        with self._write() as conn:
            row = self._lock_table(conn, connection_id, schema_name, table_name)
            live_started = row.snapshot_started_at
            if live_started is not None and live_started > snapshot_started_at:
                # Nothing ever referenced the new file: it may go at once.
                self._schedule(conn, [new_path], self.clock())
                return SwapResult(table=_table(row), replaced_path=None, superseded=True)
            replaced = row.parquet_path
            conn.execute(
                update(tables)
                .where(tables.c.id == row.id)
                .values(
                    parquet_path=new_path,
                    last_sync=synced_at,
                    snapshot_started_at=snapshot_started_at,
                )
            )
            queued = snapshots.drop_deltas(conn, row.id)
            if replaced is not None and replaced != new_path:
                queued.append(replaced)
            self._schedule(conn, queued, delete_after)
            snapshots.replace_increments(conn, row.id, increments)
        table = replace(
            _table(row),
            parquet_path=new_path,
            last_sync=synced_at,
            snapshot_started_at=snapshot_started_at,
        )
        return SwapResult(table=table, replaced_path=replaced, superseded=False)

    def append_delta(
        self,
        connection_id: int,
        schema_name: str,
        table_name: str,
        delta_path: str,
        row_count: int,
        *,
        based_on: Snapshot,
        high_water_mark: str,
        snapshot_started_at: datetime,
        synced_at: datetime | None = None,
    ) -> SwapResult:
        """Add a delta file (the rows new since `based_on`) and advance the mark, atomically.

        Superseded, and the delta queued at once, when the live snapshot is no longer the one
        the delta was read against (another refresh added a delta, marked it fresh or replaced
        the base; a compaction alone does not count): two incremental refreshes of a table
        never both add the same rows.
        """
        synced_at = synced_at or self.clock()
        with self._write() as conn:
            row = self._lock_table(conn, connection_id, schema_name, table_name)
            live = snapshots.read_increments(conn, [row.id]).get(row.id)
            current = (
                live is not None
                and not live.schema_changed
                and row.parquet_path is not None
                and live == based_on.increments
                and row.snapshot_started_at == based_on.table.snapshot_started_at
            )
            if not current:
                self._schedule(conn, [delta_path], self.clock())
                return SwapResult(table=_table(row), replaced_path=None, superseded=True)
            snapshots.add_delta(conn, row.id, delta_path, row_count, synced_at)
            snapshots.advance_mark(conn, row.id, high_water_mark)
            started = max(snapshot_started_at, row.snapshot_started_at or snapshot_started_at)
            return _record_sync(conn, row, synced_at, started)

    def mark_fresh(
        self,
        connection_id: int,
        schema_name: str,
        table_name: str,
        *,
        snapshot_started_at: datetime,
        synced_at: datetime | None = None,
    ) -> SwapResult:
        """An incremental read found nothing new: the live snapshot is fresh as of its start."""
        synced_at = synced_at or self.clock()
        with self._write() as conn:
            row = self._lock_table(conn, connection_id, schema_name, table_name)
            if (
                row.snapshot_started_at is not None
                and row.snapshot_started_at > snapshot_started_at
            ):
                return SwapResult(table=_table(row), replaced_path=None, superseded=True)
            return _record_sync(conn, row, synced_at, snapshot_started_at)

    def swap_compacted(
        self,
        connection_id: int,
        schema_name: str,
        table_name: str,
        new_path: str,
        *,
        compacted: Sequence[str],
        delete_after: datetime,
    ) -> SwapResult:
        """Replace a snapshot's files by one file holding the same rows, atomically.

        Superseded, and the new file queued at once, when the live files are no longer exactly
        `compacted` (a refresh swapped in meanwhile).
        """
        with self._write() as conn:
            row = self._lock_table(conn, connection_id, schema_name, table_name)
            live = [row.parquet_path, *snapshots.delta_paths(conn, [row.id]).get(row.id, [])]
            if live != list(compacted):
                self._schedule(conn, [new_path], self.clock())
                return SwapResult(table=_table(row), replaced_path=None, superseded=True)
            snapshots.drop_deltas(conn, row.id)
            conn.execute(update(tables).where(tables.c.id == row.id).values(parquet_path=new_path))
            self._schedule(conn, list(compacted), delete_after)
        return SwapResult(
            table=replace(_table(row), parquet_path=new_path),
            replaced_path=row.parquet_path,
            superseded=False,
        )

    def snapshot(self, connection_id: int, schema_name: str, table_name: str) -> Snapshot:
        """The table with the files its data is read from now."""
        if not _is_id(connection_id):
            raise TableNotFoundError(connection_id, schema_name, table_name)
        with self._read() as conn:
            row = conn.execute(
                select(tables).where(_identity(connection_id, schema_name, table_name))
            ).first()
            if row is None:
                raise TableNotFoundError(connection_id, schema_name, table_name)
            return self._snapshots(conn, [_table(row)])[0]

    def list_snapshots(self, connection_id: int | None = None) -> list[Snapshot]:
        """Every table (of one connection, or of all) with its files, in three statements."""
        query = select(tables).order_by(
            tables.c.connection_id, tables.c.schema_name, tables.c.table_name
        )
        if connection_id is not None:
            if not _is_id(connection_id):
                return []
            query = query.where(tables.c.connection_id == connection_id)
        with self._read() as conn:
            return self._snapshots(conn, [_table(row) for row in conn.execute(query)])

    def _snapshots(self, conn: Connection, records: list[TableRecord]) -> list[Snapshot]:
        ids = [t.id for t in records]
        deltas = snapshots.delta_paths(conn, ids)
        increments = snapshots.read_increments(conn, ids)
        return [Snapshot(t, tuple(deltas.get(t.id, ())), increments.get(t.id)) for t in records]

    def _lock_table(
        self, conn: Connection, connection_id: int, schema_name: str, table_name: str
    ) -> Row[Any]:
        if not _is_id(connection_id):
            raise TableNotFoundError(connection_id, schema_name, table_name)
        row = conn.execute(
            select(tables)
            .where(_identity(connection_id, schema_name, table_name))
            .with_for_update()
        ).first()
        if row is None:
            raise TableNotFoundError(connection_id, schema_name, table_name)
        return row

    # -- policies ----------------------------------------------------------------------------

    def set_connection_policy(self, connection_id: int, policy_json: str | None) -> None:
        """Store (or, with None, remove) a connection's default refresh policy."""
        with self._write() as conn:
            _require_connection(conn, connection_id)
            self._set_policy(conn, connection_policies, "connection_id", connection_id, policy_json)

    def set_table_policy(
        self, connection_id: int, schema_name: str, table_name: str, policy_json: str | None
    ) -> None:
        """Store (or, with None, remove) a table's policy override."""
        with self._write() as conn:
            row = self._lock_table(conn, connection_id, schema_name, table_name)
            self._set_policy(conn, table_policies, "table_id", row.id, policy_json)

    def policies(
        self, connection_id: int | None = None, table_id: int | None = None
    ) -> tuple[dict[int, str], dict[int, str]]:
        """The stored policies: by connection id, and by table id (of one connection, or all;
        with `table_id`, of that table only)."""
        by_connection = select(
            connection_policies.c.connection_id, connection_policies.c.policy_json
        )
        by_table = select(table_policies.c.table_id, table_policies.c.policy_json)
        if connection_id is not None:
            by_connection = by_connection.where(
                connection_policies.c.connection_id == connection_id
            )
            by_table = by_table.join(tables, tables.c.id == table_policies.c.table_id).where(
                tables.c.connection_id == connection_id
            )
        if table_id is not None:
            by_table = by_table.where(table_policies.c.table_id == table_id)
        with self._read() as conn:
            return (
                {key: text for key, text in conn.execute(by_connection)},
                {key: text for key, text in conn.execute(by_table)},
            )

    def _set_policy(
        self, conn: Connection, table: Any, key: str, value: int, policy_json: str | None
    ) -> None:
        conn.execute(delete(table).where(table.c[key] == value))
        if policy_json is not None:
            conn.execute(
                insert(table).values(
                    {key: value, "policy_json": policy_json, "updated_at": self.clock()}
                )
            )

    # -- deletions ---------------------------------------------------------------------------

    def schedule_deletions(self, paths: Iterable[str], delete_after: datetime) -> None:
        """Queue files for deletion; a path already queued keeps its single row."""
        with self._write() as conn:
            self._schedule(conn, list(paths), delete_after)

    def due_deletions(
        self, now: datetime | None = None, limit: int | None = None
    ) -> list[PendingDeletion]:
        query = (
            select(pending_deletions)
            .where(pending_deletions.c.delete_after <= (now or self.clock()))
            .order_by(pending_deletions.c.delete_after, pending_deletions.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            return [_pending(row) for row in conn.execute(query)]

    def untried_deletion_due_times(self, limit: int = 1000) -> list[datetime]:
        """When the queued deletions never attempted yet fall due, soonest first."""
        query = (
            select(pending_deletions.c.delete_after)
            .where(pending_deletions.c.attempts == 0)
            .distinct()
            .order_by(pending_deletions.c.delete_after)
            .limit(limit)
        )
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    def list_deletions(self) -> list[PendingDeletion]:
        with self._read() as conn:
            return [
                _pending(row)
                for row in conn.execute(select(pending_deletions).order_by(pending_deletions.c.id))
            ]

    def release_referenced_deletions(self, ids: Sequence[int]) -> list[PendingDeletion]:
        """Drop the queued deletions whose path a table references right now; returns them."""
        with self._write() as conn:
            referenced = [
                _pending(row)
                for row in conn.execute(
                    select(pending_deletions).where(
                        pending_deletions.c.id.in_(ids),
                        pending_deletions.c.path.in_(_referenced_paths()),
                    )
                )
            ]
            if referenced:
                conn.execute(
                    delete(pending_deletions).where(
                        pending_deletions.c.id.in_([p.id for p in referenced])
                    )
                )
        return referenced

    def remove_deletions(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self._write() as conn:
            conn.execute(delete(pending_deletions).where(pending_deletions.c.id.in_(ids)))

    def record_deletion_failures(self, failures: dict[int, str]) -> None:
        """Count one more failed attempt, with its error, for each pending deletion id."""
        if not failures:
            return
        statement = (
            update(pending_deletions)
            .where(pending_deletions.c.id == bindparam("deletion_id"))
            .values(attempts=pending_deletions.c.attempts + 1, last_error=bindparam("error"))
        )
        with self._write() as conn:
            conn.execute(
                statement,
                [{"deletion_id": i, "error": error[:2000]} for i, error in failures.items()],
            )

    def known_paths(self) -> set[str]:
        """Every path a table references or the deletion queue holds."""
        with self._read() as conn:
            referenced = conn.execute(_referenced_paths()).scalars()
            queued = conn.execute(select(pending_deletions.c.path)).scalars()
            return set(referenced) | set(queued)

    def counts(self) -> dict[str, int]:
        with self._read() as conn:
            return {
                "connections": conn.execute(
                    select(func.count()).select_from(connections)
                ).scalar_one(),
                "tables": conn.execute(select(func.count()).select_from(tables)).scalar_one(),
                "pending_deletions": conn.execute(
                    select(func.count()).select_from(pending_deletions)
                ).scalar_one(),
            }

    # -- shared statements -------------------------------------------------------------------

    def _schedule(self, conn: Connection, paths: Sequence[str], delete_after: datetime) -> None:
        if not paths:
            return
        statement = self._insert(pending_deletions).on_conflict_do_nothing(
            index_elements=[pending_deletions.c.path]
        )
        conn.execute(statement, [{"path": p, "delete_after": delete_after} for p in paths])

    def _upsert(
        self, conn: Connection, connection_id: int, discovered: Sequence[DiscoveredTable]
    ) -> None:
        if not discovered:
            return
        statement = self._insert(tables)
        statement = statement.on_conflict_do_update(
            index_elements=[tables.c.connection_id, tables.c.schema_name, tables.c.table_name],
            set_={"arrow_schema_json": statement.excluded.arrow_schema_json},
        )
        conn.execute(
            statement,
            [
                {
                    "connection_id": connection_id,
                    "schema_name": t.schema_name,
                    "table_name": t.table_name,
                    "arrow_schema_json": t.arrow_schema_json,
                }
                for t in discovered
            ],
        )

    def _delete_tables(
        self, conn: Connection, stale: Sequence[TableRecord], delete_after: datetime
    ) -> None:
        if not stale:
            return
        ids = [t.id for t in stale]
        deltas = [p for paths in snapshots.delta_paths(conn, ids).values() for p in paths]
        conn.execute(delete(tables).where(tables.c.id.in_(ids)))
        paths = [t.parquet_path for t in stale if t.parquet_path]
        self._schedule(conn, paths + deltas, delete_after)


def _referenced_paths() -> Any:
    """Every path a table's snapshot reads: bases and delta files."""
    return (
        select(tables.c.parquet_path)
        .where(tables.c.parquet_path.is_not(None))
        .union_all(select(snapshot_files.c.path))
    )


def _is_id(value: int) -> bool:
    return -_MAX_ID - 1 <= value <= _MAX_ID


def _require_connection(conn: Connection, connection_id: int) -> None:
    if not _is_id(connection_id):
        raise ConnectionNotFoundError(connection_id)
    found = conn.execute(select(connections.c.id).where(connections.c.id == connection_id))
    if found.first() is None:
        raise ConnectionNotFoundError(connection_id)


def _identity(connection_id: int, schema_name: str, table_name: str) -> Any:
    return and_(
        tables.c.connection_id == connection_id,
        tables.c.schema_name == schema_name,
        tables.c.table_name == table_name,
    )


def _connection(row: Row[Any]) -> ConnectionRecord:
    return ConnectionRecord(
        id=row.id,
        name=row.name,
        source_type=row.source_type,
        config=json.loads(row.config_json),
        created_at=row.created_at,
    )


def _table(row: Row[Any]) -> TableRecord:
    return TableRecord(**row._mapping)


def _pending(row: Row[Any]) -> PendingDeletion:
    return PendingDeletion(**row._mapping)


def _record_sync(
    conn: Connection, row: Row[Any], synced_at: datetime, snapshot_started_at: datetime
) -> SwapResult:
    """The table `row` is fresh as of `synced_at`, with the snapshot started at the time given;
    the live files stay as they are."""
    conn.execute(
        update(tables)
        .where(tables.c.id == row.id)
        .values(last_sync=synced_at, snapshot_started_at=snapshot_started_at)
    )
    table = replace(_table(row), last_sync=synced_at, snapshot_started_at=snapshot_started_at)
    return SwapResult(table=table, replaced_path=None, superseded=False)
