"""Faults (issue 8, part 5): each refresh fails clearly, the old cache keeps serving, nothing
partial is left, and the next refresh succeeds once the fault is gone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hostile_support import (
    FaultyS3Proxy,
    all_files,
    pg_admin,
    query_rows,
    refresh_table,
    register,
    remount,
    terminate_backends,
    tmpfs,
)
from tests.http_server import serve
from tests.source_dbs import SourceDB
from tests.world import World, make_world
from webhook.app import create_app

COUNT = "SELECT count(*) FROM {table}"


def _table_sql(connection: str, schema: str, table: str) -> str:
    return f'"{connection}"."{schema}"."{table}"'


def _fill(source: SourceDB, table: str, rows: int, *, wide: bool = False) -> None:
    """(Re)create `table` with `rows` rows; wide rows are incompressible (md5 text)."""
    label = "md5(i::text) || md5((i * 7)::text)" if wide else "'row ' || i"
    source.execute(
        f'DROP TABLE IF EXISTS {source.schema}."{table}"',
        f'CREATE TABLE {source.schema}."{table}" AS '
        f"SELECT i AS id, {label} AS label FROM generate_series(1, {rows}) AS g(i)",
    )


def _fault_cycle(
    client: httpx.Client,
    files: Callable[[], set[str]],
    conn_id: int,
    schema: str,
    table: str,
    *,
    old_rows: int,
    new_rows: int,
    expect: str,
    inject: Callable[[], None],
    heal: Callable[[], None],
) -> None:
    """The fault contract around one table refresh."""
    sql = COUNT.format(table=_table_sql("src", schema, table))
    assert query_rows(client, sql) == [[old_rows]]
    before = files()
    inject()
    try:
        started = time.monotonic()
        failed = refresh_table(client, conn_id, schema, table)
        print(
            f"\n  fault: {failed.status_code} after {time.monotonic() - started:.1f} s:",
            failed.text[:300],
        )
        assert failed.status_code == 500, failed.text
        assert expect in failed.json()["error"].lower(), failed.text
        assert files() == before, "a partial file was left behind"
        assert query_rows(client, sql) == [[old_rows]], "the old cache stopped serving"
    finally:
        heal()
    healed = refresh_table(client, conn_id, schema, table)
    assert healed.status_code == 200, healed.text
    assert query_rows(client, sql) == [[new_rows]]
    print(f"  healed: {healed.json()['rows_synced']} rows synced")


@pytest.fixture
def pg_world(prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world("sqlite", "postgres", tmp_path, refresh_retries=0) as world:
        yield world


def _database(world: World) -> str:
    return str(world.source.registration()[1]["database"])


def test_source_drops_the_connection_mid_stream(pg_world: World) -> None:
    world, database = pg_world, _database(pg_world)
    _fill(world.source, "base", 3)
    # One row of the view sleeps while `sleep_seconds` says so: a read that is in progress.
    world.source.execute(
        "CREATE TABLE knob (sleep_seconds float8)",
        "INSERT INTO knob VALUES (0)",
        "CREATE VIEW slow AS SELECT b.id, b.label FROM base b "
        "CROSS JOIN LATERAL (SELECT pg_sleep(CASE WHEN b.id = 2 "
        "THEN (SELECT sleep_seconds FROM knob) ELSE 0 END)) AS s",
    )
    stop = threading.Event()
    killed: list[int] = []

    def killer() -> None:
        while not stop.is_set():
            killed.append(terminate_backends(database, query_matches='"slow"|^fetch'))
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)

    def inject() -> None:
        world.source.execute("UPDATE knob SET sleep_seconds = 10")
        thread.start()

    def heal() -> None:
        stop.set()
        thread.join()
        world.source.execute(
            "UPDATE knob SET sleep_seconds = 0", "INSERT INTO base VALUES (4, 'x')"
        )

    with serve(create_app(world.runtime)) as client:
        conn_id = register(client, "src", *world.source.registration())
        print(f"\nterminating the reading backend of public.slow on {database}")
        _fault_cycle(
            client,
            lambda: world.cache_files(),
            conn_id,
            "public",
            "slow",
            old_rows=3,
            new_rows=4,
            expect="terminat",
            inject=inject,
            heal=heal,
        )
    assert sum(killed) >= 1, "no reading backend was found to terminate"
    print(f"  backends terminated: {sum(killed)}")


def test_source_that_hangs_hits_the_statement_timeout(pg_world: World) -> None:
    """The connection's statement_timeout_seconds stops a read that hangs."""
    world = pg_world
    _fill(world.source, "base", 3)
    world.source.execute(
        "CREATE TABLE knob (sleep_seconds float8)",
        "INSERT INTO knob VALUES (0)",
        "CREATE VIEW hangs AS SELECT b.id, b.label FROM base b "
        "CROSS JOIN LATERAL (SELECT pg_sleep((SELECT sleep_seconds FROM knob))) AS s",
    )

    def inject() -> None:
        world.source.execute("UPDATE knob SET sleep_seconds = 3600")

    def heal() -> None:
        world.source.execute(
            "UPDATE knob SET sleep_seconds = 0", "INSERT INTO base VALUES (4, 'x')"
        )

    source_type, config = world.source.registration()
    with serve(create_app(world.runtime)) as client:
        conn_id = register(client, "src", source_type, {**config, "statement_timeout_seconds": 1})
        _fault_cycle(
            client,
            lambda: world.cache_files(),
            conn_id,
            "public",
            "hangs",
            old_rows=3,
            new_rows=4,
            expect="statement timeout",
            inject=inject,
            heal=heal,
        )


@pytest.fixture
def tmpfs_world(prefect_server: None, tmp_path: Path) -> Iterator[tuple[World, Path]]:
    with (
        tmpfs(tmp_path / "cache", "1m") as cache,
        make_world("sqlite", "duckdb", tmp_path, refresh_retries=0) as world,
    ):
        yield world, cache


def test_full_cache_directory(tmpfs_world: tuple[World, Path]) -> None:
    world, cache = tmpfs_world
    _fill(world.source, "orders", 3)

    def inject() -> None:
        _fill(world.source, "orders", 60_000, wide=True)  # ~4 MB of Parquet on a 1 MB tmpfs

    with serve(create_app(world.runtime)) as client:
        conn_id = register(client, "src", *world.source.registration())
        print("\ncache root on a 1 MB tmpfs")
        _fault_cycle(
            client,
            lambda: all_files(cache),
            conn_id,
            "main",
            "orders",
            old_rows=3,
            new_rows=60_000,
            expect="no space left",
            inject=inject,
            heal=lambda: remount(cache, "size=64m"),
        )


def test_read_only_cache_directory(tmpfs_world: tuple[World, Path]) -> None:
    world, cache = tmpfs_world
    _fill(world.source, "orders", 3)

    def inject() -> None:
        _fill(world.source, "orders", 5)
        remount(cache, "ro")

    with serve(create_app(world.runtime)) as client:
        conn_id = register(client, "src", *world.source.registration())
        print("\ncache root remounted read-only")
        _fault_cycle(
            client,
            lambda: all_files(cache),
            conn_id,
            "main",
            "orders",
            old_rows=3,
            new_rows=5,
            expect="read-only file system",
            inject=inject,
            heal=lambda: remount(cache, "rw"),
        )


def test_s3_endpoint_that_returns_errors(
    prefect_server: None, tmp_path: Path, s3_endpoint_url: str, s3_client: Any, s3_bucket: str
) -> None:
    from runtime.container import Runtime
    from runtime.settings import Settings
    from storage import CacheStorage

    with (
        FaultyS3Proxy(s3_endpoint_url) as proxy,
        make_world("sqlite", "duckdb", tmp_path, refresh_retries=0) as world,
    ):
        url = f"s3://{s3_bucket}/cache"
        settings = Settings(
            data_dir=tmp_path / "data",
            catalog_url=world.runtime.settings.catalog_url,
            cache_url=url,
            s3_endpoint_url=proxy.url,
            refresh_retries=0,
        )
        # 5 MiB parts, so a few MB of Parquet take a multipart upload; no client-side retries.
        storage = CacheStorage(
            url,
            s3_endpoint_url=proxy.url,
            storage_options={
                "default_block_size": 5 * 2**20,
                "config_kwargs": {"retries": {"max_attempts": 1}},
            },
        )
        runtime = Runtime(settings=settings, catalog=world.catalog, storage=storage)
        _fill(world.source, "orders", 3)

        def objects() -> set[str]:
            listed = s3_client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
            uploads = s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
            return {o["Key"] for o in listed} | {f"upload:{u['Key']}" for u in uploads}

        def fail_writes() -> None:
            _fill(world.source, "orders", 150_000, wide=True)
            proxy.mode = "fail_writes"

        def heal() -> None:
            proxy.mode = "pass"

        with serve(create_app(runtime)) as client:
            conn_id = register(client, "src", *world.source.registration())
            print("\nS3 answers 403 AccessDenied to every upload request")
            _fault_cycle(
                client,
                objects,
                conn_id,
                "main",
                "orders",
                old_rows=3,
                new_rows=150_000,
                expect="cannot",
                inject=fail_writes,
                heal=heal,
            )
            print(f"  requests refused: {proxy.failed[:4]} ... ({len(proxy.failed)})")
            before = objects()
            proxy.mode = "down"
            down = refresh_table(client, conn_id, "main", "orders")
            print(f"  endpoint down: {down.status_code} {down.text[:200]}")
            assert down.status_code == 500 and "cannot" in down.text, down.text
            proxy.mode = "pass"
            assert objects() == before
            assert refresh_table(client, conn_id, "main", "orders").status_code == 200


@pytest.fixture
def pg_catalog_world(prefect_server: None, tmp_path: Path) -> Iterator[World]:
    with make_world("postgresql", "duckdb", tmp_path, refresh_retries=0) as world:
        yield world


def test_catalog_restarts_between_fetch_and_swap(
    pg_catalog_world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every catalog session is terminated after the fetch: the swap reconnects and succeeds.
    Then the catalog refuses connections at swap time: the refresh fails and leaves no file."""
    world = pg_catalog_world
    catalog_db = str(world.catalog.engine.url.database)
    _fill(world.source, "orders", 3)
    real_swap = world.catalog.swap
    fault = {"mode": "off"}

    def swap(*args: Any, **kwargs: Any) -> Any:
        if fault["mode"] != "off":
            with pg_admin() as admin:
                if fault["mode"] == "down":
                    admin.execute(f'ALTER DATABASE "{catalog_db}" ALLOW_CONNECTIONS false')
            killed = terminate_backends(catalog_db)
            print(f"\n  terminated {killed} catalog sessions before the swap ({fault['mode']})")
        return real_swap(*args, **kwargs)

    monkeypatch.setattr(world.catalog, "swap", swap)

    def heal() -> None:
        fault["mode"] = "off"
        with pg_admin() as admin:
            admin.execute(f'ALTER DATABASE "{catalog_db}" ALLOW_CONNECTIONS true')

    with serve(create_app(world.runtime)) as client:
        conn_id = register(client, "src", *world.source.registration())
        sql = COUNT.format(table=_table_sql("src", "main", "orders"))
        assert query_rows(client, sql) == [[3]]
        _fill(world.source, "orders", 4)
        fault["mode"] = "restart"
        restarted = refresh_table(client, conn_id, "main", "orders")
        print(f"  restart: {restarted.status_code} {restarted.text[:200]}")
        assert restarted.status_code == 200, restarted.text
        assert query_rows(client, sql) == [[4]]
        # Queries need the catalog too: the old data is checked once it accepts connections.
        before = all_files(world.storage.root)
        _fill(world.source, "orders", 5)
        fault["mode"] = "down"
        try:
            failed = refresh_table(client, conn_id, "main", "orders")
        finally:
            heal()
        print(f"  catalog down at swap: {failed.status_code} {failed.text[:200]}")
        assert failed.status_code == 500, failed.text
        assert "not currently accepting connections" in failed.text
        assert all_files(world.storage.root) == before, "the fetched file was left behind"
        assert query_rows(client, sql) == [[4]]
        assert refresh_table(client, conn_id, "main", "orders").status_code == 200
        assert query_rows(client, sql) == [[5]]
