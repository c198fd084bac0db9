from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from catalog import (
    Catalog,
    ConnectionNotFoundError,
    DiscoveredTable,
    DuplicateConnectionError,
    TableNotFoundError,
)
from tests.conftest import FakeClock

SCHEMA_A = '{"columns":[{"name":"id","nullable":false,"type":{"id":"int64"}}]}'
SCHEMA_B = '{"columns":[{"name":"id","nullable":true,"type":{"id":"int64"}}]}'


def discovered(*names: str, schema: str = SCHEMA_A) -> list[DiscoveredTable]:
    return [DiscoveredTable("public", name, schema) for name in names]


def add_cached_tables(catalog: Catalog, *names: str) -> int:
    conn = catalog.add_connection("src", "duckdb", {"path": "/x.duckdb"})
    catalog.upsert_tables(conn.id, discovered(*names))
    for name in names:
        catalog.swap(
            conn.id, "public", name, f"/cache/{name}-v1.parquet", delete_after=catalog.clock()
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


def test_timestamps_are_aware_utc(catalog: Catalog, clock: FakeClock) -> None:
    conn = catalog.add_connection("c", "duckdb", {})
    assert catalog.get_connection(conn.id).created_at == clock.now
    assert catalog.get_connection(conn.id).created_at.utcoffset() == timedelta(0)


def test_delete_stale_tables_removes_missing_and_returns_paths(catalog: Catalog) -> None:
    conn_id = add_cached_tables(catalog, "a", "b", "c")
    stale = catalog.delete_stale_tables(conn_id, [("public", "a")])
    assert sorted((t.table_name, t.parquet_path) for t in stale) == [
        ("b", "/cache/b-v1.parquet"),
        ("c", "/cache/c-v1.parquet"),
    ]
    assert [t.table_name for t in catalog.list_tables(conn_id)] == ["a"]


def test_delete_stale_tables_with_empty_current_deletes_all(catalog: Catalog) -> None:
    conn_id = add_cached_tables(catalog, "a", "b")
    assert len(catalog.delete_stale_tables(conn_id, [])) == 2
    assert catalog.list_tables(conn_id) == []


def test_delete_stale_tables_keeps_all_when_all_present(catalog: Catalog) -> None:
    conn_id = add_cached_tables(catalog, "a", "b")
    assert catalog.delete_stale_tables(conn_id, [("public", "a"), ("public", "b")]) == []
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


def test_scheduling_the_same_path_twice_keeps_one_row(catalog: Catalog, clock: FakeClock) -> None:
    catalog.schedule_deletions(["/p.parquet"], clock.now)
    catalog.schedule_deletions(["/p.parquet", "/q.parquet"], clock.now)
    assert sorted(d.path for d in catalog.list_deletions()) == ["/p.parquet", "/q.parquet"]


def test_swap_schedules_replaced_path(catalog: Catalog, clock: FakeClock) -> None:
    conn_id = add_cached_tables(catalog, "t")
    later = clock.now + timedelta(seconds=60)
    result = catalog.swap(conn_id, "public", "t", "/cache/t-v2.parquet", delete_after=later)
    assert result.replaced_path == "/cache/t-v1.parquet"
    assert catalog.get_table(conn_id, "public", "t").parquet_path == "/cache/t-v2.parquet"
    assert [(d.path, d.delete_after) for d in catalog.list_deletions()] == [
        ("/cache/t-v1.parquet", later)
    ]


def test_swap_of_missing_table_changes_nothing(catalog: Catalog, clock: FakeClock) -> None:
    conn_id = add_cached_tables(catalog, "t")
    with pytest.raises(TableNotFoundError):
        catalog.swap(conn_id, "public", "gone", "/cache/x.parquet", delete_after=clock.now)
    assert catalog.list_deletions() == []


def test_concurrent_swaps_leave_one_live_path_and_schedule_every_other(catalog: Catalog) -> None:
    conn = catalog.add_connection("src", "duckdb", {})
    catalog.upsert_tables(conn.id, discovered("t"))
    written: list[str] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(worker_id: int) -> None:
        try:
            for i in range(50 // 8 + (1 if worker_id < 50 % 8 else 0)):
                path = f"/cache/t-{worker_id}-{i}.parquet"
                with lock:
                    written.append(path)
                catalog.swap(conn.id, "public", "t", path, delete_after=catalog.clock())
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


def test_upsert_keeps_cache_and_identical_schema_is_byte_identical(catalog: Catalog) -> None:
    conn_id = add_cached_tables(catalog, "t")
    before = catalog.get_table(conn_id, "public", "t")
    catalog.upsert_tables(conn_id, discovered("t"))
    after = catalog.get_table(conn_id, "public", "t")
    assert after.parquet_path == before.parquet_path == "/cache/t-v1.parquet"
    assert after.last_sync == before.last_sync
    assert after.arrow_schema_json.encode() == before.arrow_schema_json.encode()
    catalog.upsert_tables(conn_id, discovered("t", schema=SCHEMA_B))
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
    assert before == after == "0001"
    first.dispose()
