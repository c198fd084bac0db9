"""Incremental snapshots in the catalog: a base plus delta files and a high-water mark, each
change one transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from catalog import Catalog, DiscoveredTable, Increments, Snapshot, TableNotFoundError
from tests.conftest import FakeClock

SCHEMA = '[{"name":"id","nullable":false,"type":"int64"}]'
WIDER = (
    '[{"name":"id","nullable":false,"type":"int64"},{"name":"x","nullable":true,"type":"int64"}]'
)


def incremental_table(catalog: Catalog, clock: FakeClock) -> tuple[int, Snapshot]:
    """Connection `src` with table public.t whose base /c/base.parquet was read up to mark 10."""
    conn_id = catalog.add_connection("src", "duckdb", {"path": "/x.duckdb"}).id
    catalog.sync_tables(conn_id, [DiscoveredTable("public", "t", SCHEMA)], delete_after=clock.now)
    increments = Increments("append", "id", (), '{"int": "10"}', clock.now)
    catalog.swap(
        conn_id,
        "public",
        "t",
        "/c/base.parquet",
        snapshot_started_at=clock.now,
        delete_after=clock.now,
        increments=increments,
    )
    return conn_id, catalog.snapshot(conn_id, "public", "t")


def append(
    catalog: Catalog, conn_id: int, path: str, based_on: Snapshot, mark: str, clock: FakeClock
) -> bool:
    clock.advance(1)
    result = catalog.append_delta(
        conn_id,
        "public",
        "t",
        path,
        5,
        based_on=based_on,
        high_water_mark=mark,
        snapshot_started_at=clock.now,
    )
    return result.superseded


def test_deltas_join_the_snapshot_in_order_and_advance_the_mark(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id, base = incremental_table(catalog, clock)
    assert not append(catalog, conn_id, "/c/d1.parquet", base, '{"int": "20"}', clock)
    after_first = catalog.snapshot(conn_id, "public", "t")
    assert not append(catalog, conn_id, "/c/d2.parquet", after_first, '{"int": "30"}', clock)

    snapshot = catalog.snapshot(conn_id, "public", "t")
    assert snapshot.files == ("/c/base.parquet", "/c/d1.parquet", "/c/d2.parquet")
    assert snapshot.increments is not None
    assert snapshot.increments.high_water_mark == '{"int": "30"}'
    assert snapshot.table.last_sync == clock.now
    assert {"/c/d1.parquet", "/c/d2.parquet"} <= catalog.known_paths()
    (listed,) = catalog.list_snapshots(conn_id)
    assert listed == snapshot


def test_two_increments_read_against_one_mark_never_both_land(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id, base = incremental_table(catalog, clock)
    assert not append(catalog, conn_id, "/c/first.parquet", base, '{"int": "20"}', clock)
    assert append(catalog, conn_id, "/c/second.parquet", base, '{"int": "20"}', clock)

    snapshot = catalog.snapshot(conn_id, "public", "t")
    assert snapshot.files == ("/c/base.parquet", "/c/first.parquet")
    (queued,) = catalog.list_deletions()
    assert (queued.path, queued.delete_after) == ("/c/second.parquet", clock.now)


def test_a_full_refresh_replaces_the_base_and_queues_every_delta(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id, base = incremental_table(catalog, clock)
    append(catalog, conn_id, "/c/d1.parquet", base, '{"int": "20"}', clock)
    clock.advance(1)
    later = clock.now + timedelta(seconds=60)
    fresh = Increments("append", "id", (), '{"int": "25"}', clock.now)
    catalog.swap(
        conn_id,
        "public",
        "t",
        "/c/base2.parquet",
        snapshot_started_at=clock.now,
        delete_after=later,
        increments=fresh,
    )
    snapshot = catalog.snapshot(conn_id, "public", "t")
    assert snapshot.files == ("/c/base2.parquet",)
    assert snapshot.increments == fresh
    assert {(d.path, d.delete_after) for d in catalog.list_deletions()} == {
        ("/c/base.parquet", later),
        ("/c/d1.parquet", later),
    }
    # An increment read against the old base is superseded.
    assert append(catalog, conn_id, "/c/late.parquet", base, '{"int": "40"}', clock)


def test_a_full_refresh_without_increments_makes_the_table_full_again(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id, base = incremental_table(catalog, clock)
    append(catalog, conn_id, "/c/d1.parquet", base, '{"int": "20"}', clock)
    clock.advance(1)
    catalog.swap(
        conn_id,
        "public",
        "t",
        "/c/full.parquet",
        snapshot_started_at=clock.now,
        delete_after=clock.now,
    )
    snapshot = catalog.snapshot(conn_id, "public", "t")
    assert (snapshot.files, snapshot.increments) == (("/c/full.parquet",), None)


def test_compaction_swaps_only_the_files_it_read(catalog: Catalog, clock: FakeClock) -> None:
    conn_id, base = incremental_table(catalog, clock)
    append(catalog, conn_id, "/c/d1.parquet", base, '{"int": "20"}', clock)
    after_d1 = catalog.snapshot(conn_id, "public", "t")
    files = after_d1.files
    append(catalog, conn_id, "/c/d2.parquet", after_d1, '{"int": "30"}', clock)

    stale = catalog.swap_compacted(
        conn_id, "public", "t", "/c/stale.parquet", compacted=files, delete_after=clock.now
    )
    assert stale.superseded
    current = catalog.snapshot(conn_id, "public", "t")
    done = catalog.swap_compacted(
        conn_id, "public", "t", "/c/one.parquet", compacted=current.files, delete_after=clock.now
    )
    assert not done.superseded
    compacted = catalog.snapshot(conn_id, "public", "t")
    assert compacted.files == ("/c/one.parquet",)
    assert compacted.increments == current.increments
    assert {d.path for d in catalog.list_deletions()} == {"/c/stale.parquet", *current.files}


def test_a_schema_change_forces_the_next_refresh_to_be_full(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id, base = incremental_table(catalog, clock)
    catalog.sync_tables(conn_id, [DiscoveredTable("public", "t", WIDER)], delete_after=clock.now)
    snapshot = catalog.snapshot(conn_id, "public", "t")
    assert snapshot.increments is not None and snapshot.increments.schema_changed
    assert snapshot.files == ("/c/base.parquet",)  # still readable meanwhile
    assert append(catalog, conn_id, "/c/d1.parquet", base, '{"int": "20"}', clock)


def test_removing_a_table_or_its_connection_queues_its_deltas(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id, base = incremental_table(catalog, clock)
    append(catalog, conn_id, "/c/d1.parquet", base, '{"int": "20"}', clock)
    catalog.sync_tables(conn_id, [], delete_after=clock.now)
    assert {d.path for d in catalog.list_deletions()} == {"/c/base.parquet", "/c/d1.parquet"}
    with pytest.raises(TableNotFoundError):
        catalog.snapshot(conn_id, "public", "t")


def test_deleting_a_connection_queues_base_and_deltas(catalog: Catalog, clock: FakeClock) -> None:
    conn_id, base = incremental_table(catalog, clock)
    append(catalog, conn_id, "/c/d1.parquet", base, '{"int": "20"}', clock)
    catalog.set_connection_policy(conn_id, '{"mode": "append"}')
    paths = catalog.delete_connection(conn_id, delete_after=clock.now)
    assert sorted(paths) == ["/c/base.parquet", "/c/d1.parquet"]
    assert catalog.policies() == ({}, {})


def test_a_queued_delta_that_is_live_again_is_released(catalog: Catalog, clock: FakeClock) -> None:
    conn_id, base = incremental_table(catalog, clock)
    append(catalog, conn_id, "/c/d1.parquet", base, '{"int": "20"}', clock)
    catalog.schedule_deletions(["/c/d1.parquet"], clock.now)
    released = catalog.release_referenced_deletions([d.id for d in catalog.due_deletions()])
    assert [d.path for d in released] == ["/c/d1.parquet"]


def test_nothing_new_marks_the_snapshot_fresh_unless_a_later_read_landed(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id, _ = incremental_table(catalog, clock)
    started = clock.now + timedelta(seconds=5)
    clock.advance(10)
    fresh = catalog.mark_fresh(conn_id, "public", "t", snapshot_started_at=started)
    assert not fresh.superseded
    assert catalog.get_table(conn_id, "public", "t").last_sync == clock.now
    stale = catalog.mark_fresh(
        conn_id, "public", "t", snapshot_started_at=started - timedelta(seconds=1)
    )
    assert stale.superseded


def test_policies_are_stored_per_connection_and_per_table(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id, _ = incremental_table(catalog, clock)
    table_id = catalog.get_table(conn_id, "public", "t").id
    catalog.set_connection_policy(conn_id, '{"max_staleness_seconds": 60}')
    catalog.set_table_policy(conn_id, "public", "t", '{"mode": "append"}')
    assert catalog.policies(conn_id) == (
        {conn_id: '{"max_staleness_seconds": 60}'},
        {table_id: '{"mode": "append"}'},
    )
    assert catalog.policies(conn_id, table_id)[1] == {table_id: '{"mode": "append"}'}
    assert catalog.policies(conn_id, table_id + 1)[1] == {}
    catalog.set_table_policy(conn_id, "public", "t", None)
    assert catalog.policies() == ({conn_id: '{"max_staleness_seconds": 60}'}, {})
    with pytest.raises(TableNotFoundError):
        catalog.set_table_policy(conn_id, "public", "missing", "{}")


def test_a_delta_whose_mark_did_not_move_still_supersedes_one_read_against_the_same_snapshot(
    catalog: Catalog, clock: FakeClock
) -> None:
    """A merge read of only the rows at the mark leaves the mark where it was: the snapshot's
    start time tells the two reads apart."""
    conn_id, base = incremental_table(catalog, clock)
    assert not append(catalog, conn_id, "/c/first.parquet", base, '{"int": "10"}', clock)
    assert append(catalog, conn_id, "/c/second.parquet", base, '{"int": "10"}', clock)
    assert catalog.snapshot(conn_id, "public", "t").files == ("/c/base.parquet", "/c/first.parquet")


def test_a_compaction_meanwhile_does_not_supersede_a_delta(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id, base = incremental_table(catalog, clock)
    append(catalog, conn_id, "/c/d1.parquet", base, '{"int": "20"}', clock)
    read_against = catalog.snapshot(conn_id, "public", "t")
    catalog.swap_compacted(
        conn_id,
        "public",
        "t",
        "/c/one.parquet",
        compacted=read_against.files,
        delete_after=clock.now,
    )
    assert not append(catalog, conn_id, "/c/d2.parquet", read_against, '{"int": "30"}', clock)
    assert catalog.snapshot(conn_id, "public", "t").files == ("/c/one.parquet", "/c/d2.parquet")


def test_upgrade_from_0002_keeps_every_row_and_tables_become_incremental_from_then_on(
    catalog_url: str, clock: FakeClock
) -> None:
    from alembic import command
    from sqlalchemy import column, insert, table

    from catalog.engine import create_catalog_engine
    from catalog.migrate import alembic_config, current_revision
    from catalog.schema import UTCDateTime
    from tests.legacy_rows import insert_connection

    engine = create_catalog_engine(catalog_url)
    command.upgrade(alembic_config(engine), "0002")
    synced = clock.now - timedelta(hours=1)
    # Rows as revision 0002 wrote them: two cached tables, one not cached, a queued file.
    with engine.begin() as conn:
        insert_connection(conn, 3, "src", synced)
        tables_0002 = table(
            "tables",
            column("connection_id"),
            column("schema_name"),
            column("table_name"),
            column("arrow_schema_json"),
            column("parquet_path"),
            column("last_sync", UTCDateTime),
            column("snapshot_started_at", UTCDateTime),
        )
        for name, path in (("t", "/c/t-v1.parquet"), ("u", "/c/u-v1.parquet"), ("v", None)):
            conn.execute(
                insert(tables_0002).values(
                    connection_id=3,
                    schema_name="public",
                    table_name=name,
                    arrow_schema_json=SCHEMA,
                    parquet_path=path,
                    last_sync=synced if path else None,
                    snapshot_started_at=synced if path else None,
                )
            )
        conn.execute(
            insert(
                table("pending_deletions", column("path"), column("delete_after", UTCDateTime))
            ).values(path="/c/t-v0.parquet", delete_after=synced)
        )
    catalog = Catalog(engine, clock=clock)
    try:
        assert catalog.migrate() == ("0002", "0003")
        assert current_revision(engine) == "0003"
        snapshots = {s.table.table_name: s for s in catalog.list_snapshots(3)}
        assert {name: s.files for name, s in snapshots.items()} == {
            "t": ("/c/t-v1.parquet",),
            "u": ("/c/u-v1.parquet",),
            "v": (),
        }
        assert all(s.increments is None for s in snapshots.values())
        assert snapshots["t"].table.snapshot_started_at == synced
        assert catalog.policies() == ({}, {})
        assert [d.path for d in catalog.list_deletions()] == ["/c/t-v0.parquet"]
        assert catalog.known_paths() == {"/c/t-v1.parquet", "/c/u-v1.parquet", "/c/t-v0.parquet"}

        # From then on a table can be incremental: its first read under a policy is a new base.
        catalog.set_table_policy(3, "public", "t", '{"mode": "append", "cursor_column": "id"}')
        clock.advance(1)
        catalog.swap(
            3,
            "public",
            "t",
            "/c/t-v2.parquet",
            snapshot_started_at=clock.now,
            delete_after=clock.now,
            increments=Increments("append", "id", (), '{"int": "10"}', clock.now),
        )
        based_on = catalog.snapshot(3, "public", "t")
        assert not append(catalog, 3, "/c/t-d1.parquet", based_on, '{"int": "20"}', clock)
        assert catalog.snapshot(3, "public", "t").files == ("/c/t-v2.parquet", "/c/t-d1.parquet")
        assert "/c/t-v1.parquet" in {d.path for d in catalog.list_deletions()}
    finally:
        catalog.dispose()
