from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from catalog import (
    Catalog,
    ConnectionNotFoundError,
    DiscoveredTable,
    DuplicateConnectionError,
    SwapResult,
    TableNotFoundError,
)
from catalog.schema import metadata
from tests.conftest import FakeClock, fresh_postgres_database
from tests.services import postgres_url

SCHEMA_A = '{"columns":[{"name":"id","nullable":false,"type":{"id":"int64"}}]}'
SCHEMA_B = '{"columns":[{"name":"id","nullable":true,"type":{"id":"int64"}}]}'


def discovered(*names: str, schema: str = SCHEMA_A) -> list[DiscoveredTable]:
    return [DiscoveredTable("public", name, schema) for name in names]


def add_cached_tables(catalog: Catalog, *names: str) -> int:
    conn = catalog.add_connection("src", "duckdb", {"path": "/x.duckdb"})
    catalog.sync_tables(conn.id, discovered(*names), delete_after=catalog.clock())
    for name in names:
        catalog.swap(
            conn.id,
            "public",
            name,
            f"/cache/{name}-v1.parquet",
            snapshot_started_at=catalog.clock(),
            delete_after=catalog.clock(),
        )
    return conn.id


def test_connections_add_get_list_and_duplicate(catalog: Catalog) -> None:
    first = catalog.add_connection("sales", "postgres", {"host": "db"})
    catalog.add_connection("crm", "duckdb", {"path": "/crm.duckdb"})
    assert catalog.get_connection(first.id).config == {"host": "db"}
    assert catalog.get_connection_by_name("crm").source_type == "duckdb"
    assert [c.name for c in catalog.list_connections()] == ["sales", "crm"]
    with pytest.raises(DuplicateConnectionError, match="sales"):
        catalog.add_connection("sales", "duckdb", {})
    with pytest.raises(ConnectionNotFoundError):
        catalog.get_connection(9999)


def test_update_connection_renames_and_replaces_the_config(catalog: Catalog) -> None:
    sales = catalog.add_connection("sales", "postgres", {"host": "db"})
    catalog.add_connection("crm", "duckdb", {"path": "/crm.duckdb"})
    updated = catalog.update_connection(sales.id, "shop", {"host": "db2", "include": ["a.*"]})
    assert (updated.id, updated.name, updated.source_type) == (sales.id, "shop", "postgres")
    assert updated.created_at == sales.created_at
    assert catalog.get_connection(sales.id) == updated
    assert updated.config == {"host": "db2", "include": ["a.*"]}
    with pytest.raises(DuplicateConnectionError, match="crm"):
        catalog.update_connection(sales.id, "crm", {})
    assert catalog.get_connection(sales.id) == updated
    for missing in (9999, 2**31):
        with pytest.raises(ConnectionNotFoundError):
            catalog.update_connection(missing, "x", {})


@pytest.mark.parametrize("huge", [2**31, 2**63, -(2**31) - 1])
def test_an_id_beyond_the_id_column_names_nothing(
    catalog: Catalog, clock: FakeClock, huge: int
) -> None:
    """PostgreSQL's integer ids are 32-bit: a larger id is not found, never a database error."""
    with pytest.raises(ConnectionNotFoundError):
        catalog.get_connection(huge)
    with pytest.raises(ConnectionNotFoundError):
        catalog.delete_connection(huge, delete_after=clock.now)
    with pytest.raises(ConnectionNotFoundError):
        catalog.sync_tables(huge, discovered("t"), delete_after=clock.now)
    with pytest.raises(TableNotFoundError):
        catalog.get_table(huge, "public", "t")
    assert catalog.list_tables(huge) == []


def test_timestamps_are_aware_utc(catalog: Catalog, clock: FakeClock) -> None:
    conn = catalog.add_connection("c", "duckdb", {})
    assert catalog.get_connection(conn.id).created_at == clock.now
    assert catalog.get_connection(conn.id).created_at.utcoffset() == timedelta(0)


def test_a_sync_removes_missing_tables_and_returns_their_paths(catalog: Catalog) -> None:
    conn_id = add_cached_tables(catalog, "a", "b", "c")
    stale = catalog.sync_tables(conn_id, discovered("a"), delete_after=catalog.clock()).removed
    assert sorted((t.table_name, t.parquet_path) for t in stale) == [
        ("b", "/cache/b-v1.parquet"),
        ("c", "/cache/c-v1.parquet"),
    ]
    assert [t.table_name for t in catalog.list_tables(conn_id)] == ["a"]


def test_a_sync_that_finds_nothing_removes_all(catalog: Catalog) -> None:
    conn_id = add_cached_tables(catalog, "a", "b")
    assert len(catalog.sync_tables(conn_id, [], delete_after=catalog.clock()).removed) == 2
    assert catalog.list_tables(conn_id) == []


def test_a_sync_that_finds_all_keeps_all(catalog: Catalog) -> None:
    conn_id = add_cached_tables(catalog, "a", "b")
    sync = catalog.sync_tables(conn_id, discovered("a", "b"), delete_after=catalog.clock())
    assert sync.removed == []
    assert len(catalog.list_tables(conn_id)) == 2


def test_pending_deletions_schedule_due_remove(catalog: Catalog, clock: FakeClock) -> None:
    catalog.schedule_deletions(["/cache/old.parquet"], clock.now + timedelta(seconds=60))
    assert catalog.due_deletions() == []
    clock.advance(59)
    assert catalog.due_deletions() == []
    clock.advance(1)
    due = catalog.due_deletions()
    assert [d.path for d in due] == ["/cache/old.parquet"]
    catalog.record_deletion_failures({due[0].id: "permission denied"})
    again = catalog.due_deletions()[0]
    assert (again.attempts, again.last_error) == (1, "permission denied")
    catalog.remove_deletions([due[0].id])
    assert catalog.list_deletions() == []


def test_untried_deletion_due_times_leave_out_failed_deletions(
    catalog: Catalog, clock: FakeClock
) -> None:
    """Cleanup runs are armed for these: a failed deletion waits for the safety schedule."""
    soon, later = clock.now + timedelta(seconds=5), clock.now + timedelta(seconds=60)
    catalog.schedule_deletions(["/a.parquet", "/b.parquet"], soon)
    catalog.schedule_deletions(["/c.parquet"], later)
    assert catalog.untried_deletion_due_times() == [soon, later]
    clock.advance(5)
    failed = {d.id: "permission denied" for d in catalog.due_deletions()}
    catalog.record_deletion_failures(failed)
    assert catalog.untried_deletion_due_times() == [later]


def test_scheduling_the_same_path_twice_keeps_one_row(catalog: Catalog, clock: FakeClock) -> None:
    catalog.schedule_deletions(["/p.parquet"], clock.now)
    catalog.schedule_deletions(["/p.parquet", "/q.parquet"], clock.now)
    assert sorted(d.path for d in catalog.list_deletions()) == ["/p.parquet", "/q.parquet"]


def test_swap_schedules_replaced_path(catalog: Catalog, clock: FakeClock) -> None:
    conn_id = add_cached_tables(catalog, "t")
    later = clock.now + timedelta(seconds=60)
    result = catalog.swap(
        conn_id,
        "public",
        "t",
        "/cache/t-v2.parquet",
        snapshot_started_at=clock.now,
        delete_after=later,
    )
    assert (result.replaced_path, result.superseded) == ("/cache/t-v1.parquet", False)
    assert catalog.get_table(conn_id, "public", "t").parquet_path == "/cache/t-v2.parquet"
    assert [(d.path, d.delete_after) for d in catalog.list_deletions()] == [
        ("/cache/t-v1.parquet", later)
    ]


def test_a_swap_never_replaces_a_snapshot_that_started_later(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id = add_cached_tables(catalog, "t")  # v1's snapshot started at clock.now
    started_v1 = clock.now
    clock.advance(5)
    later = clock.now + timedelta(seconds=60)

    def swap(path: str, started: datetime) -> SwapResult:
        return catalog.swap(
            conn_id, "public", "t", path, snapshot_started_at=started, delete_after=later
        )

    older = swap("/cache/t-older.parquet", started_v1 - timedelta(seconds=1))
    assert (older.superseded, older.replaced_path) == (True, None)
    table = catalog.get_table(conn_id, "public", "t")
    assert (table.parquet_path, table.snapshot_started_at) == ("/cache/t-v1.parquet", started_v1)
    # The discarded file was never visible: it is due at once, not after the grace period.
    assert [(d.path, d.delete_after) for d in catalog.list_deletions()] == [
        ("/cache/t-older.parquet", clock.now)
    ]

    same = swap("/cache/t-same.parquet", started_v1)
    assert (same.superseded, same.replaced_path) == (False, "/cache/t-v1.parquet")
    newer = swap("/cache/t-newer.parquet", started_v1 + timedelta(seconds=1))
    assert (newer.superseded, newer.replaced_path) == (False, "/cache/t-same.parquet")
    table = catalog.get_table(conn_id, "public", "t")
    assert table.parquet_path == "/cache/t-newer.parquet"
    assert table.snapshot_started_at == started_v1 + timedelta(seconds=1)
    assert {d.path for d in catalog.list_deletions()} == {
        "/cache/t-older.parquet",
        "/cache/t-v1.parquet",
        "/cache/t-same.parquet",
    }


def test_swap_of_missing_table_changes_nothing(catalog: Catalog, clock: FakeClock) -> None:
    conn_id = add_cached_tables(catalog, "t")
    with pytest.raises(TableNotFoundError):
        catalog.swap(
            conn_id,
            "public",
            "gone",
            "/cache/x.parquet",
            snapshot_started_at=clock.now,
            delete_after=clock.now,
        )
    assert catalog.list_deletions() == []


def test_concurrent_swaps_leave_one_live_path_and_schedule_every_other(catalog: Catalog) -> None:
    conn = catalog.add_connection("src", "duckdb", {})
    catalog.sync_tables(conn.id, discovered("t"), delete_after=catalog.clock())
    written: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(worker_id: int) -> None:
        try:
            for i in range(50 // 8 + (1 if worker_id < 50 % 8 else 0)):
                path = f"/cache/t-{worker_id}-{i}.parquet"
                with lock:
                    written.append(path)
                now = catalog.clock()
                catalog.swap(
                    conn.id, "public", "t", path, snapshot_started_at=now, delete_after=now
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(written) == 50
    live = catalog.get_table(conn.id, "public", "t").parquet_path
    queued = [d.path for d in catalog.list_deletions()]
    assert live in written
    assert sorted(queued) == sorted(p for p in written if p != live)
    assert len(queued) == len(set(queued)) == 49


def test_a_rediscovered_table_keeps_its_cache_and_identical_schema_bytes(catalog: Catalog) -> None:
    conn_id = add_cached_tables(catalog, "t")
    before = catalog.get_table(conn_id, "public", "t")
    catalog.sync_tables(conn_id, discovered("t"), delete_after=catalog.clock())
    after = catalog.get_table(conn_id, "public", "t")
    assert after.parquet_path == before.parquet_path == "/cache/t-v1.parquet"
    assert after.last_sync == before.last_sync
    assert after.arrow_schema_json.encode() == before.arrow_schema_json.encode()
    catalog.sync_tables(conn_id, discovered("t", schema=SCHEMA_B), delete_after=catalog.clock())
    assert catalog.get_table(conn_id, "public", "t").arrow_schema_json == SCHEMA_B
    assert catalog.get_table(conn_id, "public", "t").parquet_path == "/cache/t-v1.parquet"


def test_sync_tables_reports_and_applies_changes(catalog: Catalog, clock: FakeClock) -> None:
    conn_id = add_cached_tables(catalog, "kept", "changed", "dropped")
    new = [
        DiscoveredTable("public", "kept", SCHEMA_A),
        DiscoveredTable("public", "changed", SCHEMA_B),
        DiscoveredTable("public", "added", SCHEMA_A),
    ]
    later = clock.now + timedelta(seconds=60)
    preview = catalog.sync_tables(conn_id, new, delete_after=later, dry_run=True)
    assert [t.table_name for t in preview.added] == ["added"]
    assert len(catalog.list_tables(conn_id)) == 3
    assert catalog.list_deletions() == []

    result = catalog.sync_tables(conn_id, new, delete_after=later)
    assert [t.table_name for t in result.added] == ["added"]
    assert [t.table_name for t in result.removed] == ["dropped"]
    assert [old.table_name for old, _ in result.modified] == ["changed"]
    assert (result.unchanged, result.discovered) == (1, 3)
    assert [t.table_name for t in catalog.list_tables(conn_id)] == ["added", "changed", "kept"]
    assert catalog.get_table(conn_id, "public", "kept").parquet_path == "/cache/kept-v1.parquet"
    assert [d.path for d in catalog.list_deletions()] == ["/cache/dropped-v1.parquet"]


def test_delete_connection_schedules_its_files(catalog: Catalog, clock: FakeClock) -> None:
    conn_id = add_cached_tables(catalog, "a", "b")
    paths = catalog.delete_connection(conn_id, delete_after=clock.now)
    assert sorted(paths) == ["/cache/a-v1.parquet", "/cache/b-v1.parquet"]
    assert sorted(d.path for d in catalog.list_deletions()) == sorted(paths)
    assert catalog.list_tables() == []
    with pytest.raises(ConnectionNotFoundError):
        catalog.delete_connection(conn_id, delete_after=clock.now)


def test_release_referenced_deletions(catalog: Catalog, clock: FakeClock) -> None:
    conn_id = add_cached_tables(catalog, "t")
    live = catalog.get_table(conn_id, "public", "t").parquet_path
    assert live is not None
    catalog.schedule_deletions([live, "/cache/free.parquet"], clock.now)
    ids = [d.id for d in catalog.due_deletions()]
    released = catalog.release_referenced_deletions(ids)
    assert [d.path for d in released] == [live]
    assert [d.path for d in catalog.list_deletions()] == ["/cache/free.parquet"]


def test_migrate_is_idempotent(catalog_url: str) -> None:
    first = Catalog.from_url(catalog_url)
    before, after = first.migrate()
    assert before == after == "0003"
    first.dispose()


def test_upgrade_from_0001_keeps_every_row_and_guards_freshness_from_then_on(
    catalog_url: str, clock: FakeClock
) -> None:
    from alembic import command
    from sqlalchemy import column, insert, table

    from catalog.engine import create_catalog_engine
    from catalog.migrate import alembic_config, current_revision
    from catalog.schema import UTCDateTime
    from tests.legacy_rows import insert_connection

    engine = create_catalog_engine(catalog_url)
    command.upgrade(alembic_config(engine), "0001")
    synced = clock.now - timedelta(hours=1)
    # Rows as revision 0001 wrote them: a cached table and a queued file.
    with engine.begin() as conn:
        insert_connection(conn, 7, "src", synced)
        conn.execute(
            insert(
                table(
                    "tables",
                    column("connection_id"),
                    column("schema_name"),
                    column("table_name"),
                    column("arrow_schema_json"),
                    column("parquet_path"),
                    column("last_sync", UTCDateTime),
                )
            ).values(
                connection_id=7,
                schema_name="public",
                table_name="t",
                arrow_schema_json=SCHEMA_A,
                parquet_path="/cache/t-v1.parquet",
                last_sync=synced,
            )
        )
        conn.execute(
            insert(
                table("pending_deletions", column("path"), column("delete_after", UTCDateTime))
            ).values(path="/cache/t-v0.parquet", delete_after=synced)
        )
    catalog = Catalog(engine, clock=clock)
    try:
        assert catalog.migrate() == ("0001", "0003")
        assert current_revision(engine) == "0003"
        assert catalog.get_connection(7).name == "src"
        upgraded = catalog.get_table(7, "public", "t")
        assert (upgraded.parquet_path, upgraded.last_sync) == ("/cache/t-v1.parquet", synced)
        assert upgraded.snapshot_started_at is None  # unknown: the next refresh replaces it
        assert [(d.path, d.delete_after) for d in catalog.list_deletions()] == [
            ("/cache/t-v0.parquet", synced)
        ]
        first = catalog.swap(
            7,
            "public",
            "t",
            "/cache/t-v2.parquet",
            snapshot_started_at=synced - timedelta(hours=1),
            delete_after=clock.now,
        )
        assert (first.superseded, first.replaced_path) == (False, "/cache/t-v1.parquet")
        older = catalog.swap(
            7,
            "public",
            "t",
            "/cache/t-v3.parquet",
            snapshot_started_at=synced - timedelta(hours=2),
            delete_after=clock.now,
        )
        assert older.superseded
        assert catalog.get_table(7, "public", "t").parquet_path == "/cache/t-v2.parquet"
    finally:
        catalog.dispose()


def test_the_migrated_catalog_is_the_schema_the_code_declares(catalog: Catalog) -> None:
    """Migrations and catalog/schema.py never drift apart (a new column in one only fails here)."""
    with catalog.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_constraints_have_the_names_a_migration_can_refer_to() -> None:
    """On PostgreSQL (SQLite keeps constraints unnamed; its migrations rebuild tables)."""
    with fresh_postgres_database() as name:
        catalog = Catalog.from_url(postgres_url(name))
        try:
            assert_constraint_names(catalog.engine)
        finally:
            catalog.dispose()


def assert_constraint_names(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    for table in metadata.sorted_tables:
        found = {inspector.get_pk_constraint(table.name)["name"]}
        found |= {u["name"] for u in inspector.get_unique_constraints(table.name)}
        found |= {f["name"] for f in inspector.get_foreign_keys(table.name)}
        declared = {c.name for c in table.constraints if not isinstance(c, sa.CheckConstraint)}
        assert found == declared, table.name
