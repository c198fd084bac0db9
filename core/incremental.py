"""The data refresh of an append or merge table: only the rows past its high-water mark.

An incremental refresh reads the rows whose cursor is at or past the mark (merge: the mark minus
its lookback), writes those the cache lacks into a delta file, and adds that file with the new
mark in one catalog transaction (`Catalog.append_delta`); with nothing new, no file is written
and the snapshot is marked fresh. A full read (the first load, a schema change, a policy that
changed, the periodic full refresh of a merge table, or one asked for) writes a new base and
swaps it in with the mark it read (`Catalog.swap`), dropping the deltas. Past
`compact_after_files` files, the snapshot is compacted into one (core/compaction.py).

Rows whose cursor is NULL are never past a mark: an incremental read cannot see them. A full
read brings them; until then the cache lacks them (append), or keeps their previous version
(merge). Deletions at the source likewise reach the cache only with a full read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from catalog import Catalog, Increments, Snapshot, SwapResult
from core import watermark
from core.access import SourceAccess
from core.boundary import cached_rows, unseen_rows
from core.cache_errors import naming_the_table
from core.compaction import compact
from core.planning import RefreshPlan, plan_refresh
from core.policy import RefreshMode, TablePolicy
from sources import CursorBound, CursorValue, open_reader, schema_from_json
from sources.metadata import TableMetadata
from storage import CacheStorage


@dataclass(frozen=True)
class CursorRefresh:
    """What a refresh of an append or merge table did."""

    rows_synced: int
    superseded: bool
    incremental: bool
    reason: str
    files: int
    compacted: bool


def refresh_by_cursor(
    catalog: Catalog,
    storage: CacheStorage,
    source: SourceAccess,
    snapshot: Snapshot,
    policy: TablePolicy,
    *,
    full: bool,
    grace: timedelta,
    compact_after_files: int,
    hold_source: Callable[[], AbstractContextManager[object]],
    watch: Callable[[pa.RecordBatchReader], pa.RecordBatchReader] = lambda reader: reader,
) -> CursorRefresh:
    """Refresh one append or merge table as its policy says (`full`: read it in full).

    `hold_source` is held while the source is read (the connection's fetch slot); `watch`
    wraps the source's reader (to count its rows as they arrive). A failure anywhere removes
    the new file and leaves the catalog as it was.
    """
    table = snapshot.table
    plan = plan_refresh(policy, snapshot, catalog.clock(), full=full)
    read = _Read(policy, snapshot, storage) if plan.incremental else _Read(policy, None, storage)
    metadata = TableMetadata(
        table.schema_name, table.table_name, schema_from_json(table.arrow_schema_json)
    )
    path = storage.new_version_path(table.connection_id, table.schema_name, table.table_name)
    with hold_source():
        started = catalog.clock()  # before the source is read, once the slot is held
        with (
            open_reader(
                source.config,
                source.password,
                metadata,
                connection_name=source.name,
                since=read.bound,
            ) as reader,
            naming_the_table(source.name, table.schema_name, table.table_name),
        ):
            rows = storage.write_parquet(path, read.filter(watch(reader)))
    try:
        swapped = _land(catalog, snapshot, policy, plan, read, path, rows, started, grace)
    except BaseException:
        storage.delete(path)
        raise
    if plan.incremental and rows == 0:
        storage.delete(path)  # nothing new: the snapshot stays as it is, only fresher
    current = catalog.snapshot(table.connection_id, table.schema_name, table.table_name)
    compacted = False
    if not swapped.superseded and len(current.files) > compact_after_files:
        result = compact(catalog, storage, current, connection_name=source.name, grace=grace)
        compacted = not result.superseded
    files = 1 if compacted else len(current.files)
    return CursorRefresh(
        rows_synced=rows,
        superseded=swapped.superseded,
        incremental=plan.incremental,
        reason=plan.reason,
        files=files,
        compacted=compacted,
    )


def _land(
    catalog: Catalog,
    snapshot: Snapshot,
    policy: TablePolicy,
    plan: RefreshPlan,
    read: _Read,
    path: str,
    rows: int,
    started: datetime,
    grace: timedelta,
) -> SwapResult:
    """Put what was read into the catalog: a new base, a delta, or only a fresher sync time."""
    table = snapshot.table
    identity = (table.connection_id, table.schema_name, table.table_name)
    mark = read.new_mark()
    if not plan.incremental:
        assert policy.cursor_column is not None
        increments = Increments(
            mode=policy.mode.value,
            cursor_column=policy.cursor_column,
            primary_key=policy.primary_key,
            high_water_mark=None if mark is None else watermark.to_json(mark),
            full_started_at=started,
        )
        return catalog.swap(
            *identity,
            path,
            snapshot_started_at=started,
            delete_after=catalog.clock() + grace,
            increments=increments,
        )
    if rows == 0:
        return catalog.mark_fresh(*identity, snapshot_started_at=started)
    assert snapshot.increments is not None and mark is not None
    return catalog.append_delta(
        *identity,
        path,
        rows,
        based_on=snapshot,
        high_water_mark=watermark.to_json(mark),
        snapshot_started_at=started,
    )


class _Read:
    """One read of the source: where it starts, and the stream of the rows to keep.

    Without a snapshot it is a full read. With one, rows past the snapshot's mark are kept as
    they come; those at or before it are held back and, at the end, only those the snapshot
    does not hold are kept (core/boundary.py).
    """

    def __init__(self, policy: TablePolicy, snapshot: Snapshot | None, storage: CacheStorage):
        assert policy.cursor_column is not None
        self._cursor = policy.cursor_column
        self._merge_key = policy.primary_key if policy.mode is RefreshMode.MERGE else ()
        self._snapshot = snapshot
        self._storage = storage
        self._greatest: CursorValue | None = None
        self.previous: CursorValue | None = None
        self.bound: CursorBound | None = None
        if snapshot is not None:
            assert snapshot.increments is not None
            assert snapshot.increments.high_water_mark is not None
            self.previous = watermark.from_json(snapshot.increments.high_water_mark)
            start = watermark.minus_seconds(self.previous, policy.lookback_seconds)
            self.bound = CursorBound(self._cursor, start, inclusive=True)

    def new_mark(self) -> CursorValue | None:
        """The greatest cursor value the cache holds after this read."""
        return watermark.later(self.previous, self._greatest)

    def filter(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(reader.schema, self._batches(reader))

    def _batches(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        held: list[pa.RecordBatch] = []
        for batch in reader:
            cursor = batch.column(self._cursor)
            self._greatest = watermark.later(self._greatest, watermark.greatest(cursor))
            if self.previous is None:
                yield batch
                continue
            at_or_before = pc.fill_null(watermark.at_or_before(cursor, self.previous), False)
            yield batch.filter(pc.invert(at_or_before))
            held.append(batch.filter(at_or_before))
        if self._snapshot is None or self.previous is None:
            return
        boundary = pa.Table.from_batches(held, reader.schema)
        if boundary.num_rows:
            cached = cached_rows(
                self._storage,
                self._snapshot.files,
                boundary,
                cursor=self._cursor,
                mark=self.previous,
                merge_key=self._merge_key,
            )
            boundary = unseen_rows(boundary, cached, self._merge_key)
        yield from boundary.to_batches()
