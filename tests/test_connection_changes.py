"""Connections a user can fix and scope: PATCH /connections/{id} and include/exclude patterns,
through the real app with real PostgreSQL and MariaDB sources, on both catalog backends."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.http_server import free_port, serve
from tests.reliability_support import PROJECT_DIR, assert_nothing_leaks, cache_state, runtime_env
from tests.source_dbs import create_numbered_table
from tests.world import World, make_world
from webhook.app import create_app

CATALOGS = ["sqlite", "postgresql"]
GRACE = 600


@pytest.fixture(params=CATALOGS)
def pg(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[tuple[World, httpx.Client]]:
    with (
        make_world(request.param, "postgres", tmp_path, deletion_grace_seconds=GRACE) as world,
        serve(create_app(world.runtime)) as client,
    ):
        yield world, client


@pytest.fixture(params=CATALOGS)
def mariadb(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[tuple[World, httpx.Client]]:
    with (
        make_world(request.param, "mariadb", tmp_path) as world,
        serve(create_app(world.runtime)) as client,
    ):
        yield world, client


def connection_state(world: World) -> list[tuple[Any, ...]]:
    connections = [(c.id, c.name, json.dumps(c.config)) for c in world.catalog.list_connections()]
    tables = [(t.schema_name, t.table_name, t.parquet_path) for t in world.catalog.list_tables()]
    return [*connections, *tables]


def tables_of(client: httpx.Client, conn_id: int) -> list[str]:
    response = client.get(f"/connections/{conn_id}/tables")
    assert response.status_code == 200, response.text
    return sorted(f"{t['schema_name']}.{t['table_name']}" for t in response.json())


def count(client: httpx.Client, table: str) -> httpx.Response:
    return client.post("/query", json={"sql": f"SELECT count(*) FROM {table}"})


def test_a_connection_whose_discovery_failed_is_fixed_with_patch(
    pg: tuple[World, httpx.Client],
) -> None:
    world, client = pg
    create_numbered_table(world.source, "orders", 3)
    source_type, config = world.source.registration()
    created = client.post(
        "/connections",
        json={"name": "shop", "source_type": source_type, "config": {**config, "port": 1}},
    )
    assert created.status_code == 201, created.text
    assert created.json()["discovery_status"] == "failed"
    assert "connection 'shop'" in created.json()["discovery_error"]
    conn_id = created.json()["id"]
    other = {"name": "other", "source_type": "duckdb", "config": {"path": "x"}, "discover": False}
    assert client.post("/connections", json=other).status_code == 201

    # Refused as a registration would be, and nothing changes.
    before = connection_state(world)
    for path, body, status, error in [
        (conn_id, {"name": "no spaces"}, 400, "a connection name is 1-63"),
        (conn_id, {"name": "other"}, 409, "a connection named 'other' already exists"),
        (conn_id, {"config": {"port": "x"}}, 400, "connection 'shop': invalid config: port"),
        (conn_id, {"config": {"typo": 1}}, 400, "typo: Extra inputs are not permitted"),
        (conn_id, {"source_type": "duckdb"}, 400, "source_type: unknown field"),
        (conn_id, {}, 400, "give a new name, config keys to change, or both"),
        (999, {"name": "x"}, 404, "connection 999 not found"),
    ]:
        response = client.patch(f"/connections/{path}", json=body)
        assert response.status_code == status, (body, response.text)
        assert error in response.json()["error"], (body, response.text)
    assert connection_state(world) == before

    fixed = client.patch(f"/connections/{conn_id}", json={"config": {"port": config["port"]}})
    assert fixed.status_code == 200, fixed.text
    assert fixed.json() == {
        "id": conn_id,
        "name": "shop",
        "source_type": "postgres",
        "tables_discovered": 1,
        "discovery_status": "success",
        "discovery_error": None,
        "tables_added": 1,
        "tables_removed": 0,
        "tables_modified": 0,
    }
    assert count(client, '"shop"."public"."orders"').json()["rows"] == [[3]]

    renamed = client.patch(f"/connections/{conn_id}", json={"name": "store"})
    assert renamed.json()["name"] == "store" and renamed.json()["tables_removed"] == 0
    assert count(client, '"store"."public"."orders"').json()["rows"] == [[3]]
    assert count(client, '"shop"."public"."orders"').status_code == 404


def test_patch_a_password_reference(pg: tuple[World, httpx.Client]) -> None:
    """A literal password is kept in a Prefect Secret block, a reference as given; the local
    PostgreSQL trusts every login, so only a reference that cannot be resolved fails."""
    world, client = pg
    create_numbered_table(world.source, "orders", 3)
    source_type, config = world.source.registration()
    body = {"name": "shop", "source_type": source_type, "config": config}
    conn_id = client.post("/connections", json=body).json()["id"]
    literal = "pw-literal-Xq7-never-shown"

    with_literal = client.patch(f"/connections/{conn_id}", json={"config": {"password": literal}})
    assert with_literal.json()["discovery_status"] == "success", with_literal.text
    stored = client.get(f"/connections/{conn_id}").json()["config"]["password"]
    assert set(stored) == {"secret"}
    assert literal not in with_literal.text + json.dumps(connection_state(world))

    variable = "FRESHCACHE_TEST_PASSWORD_NOBODY_SETS"
    unset = client.patch(
        f"/connections/{conn_id}", json={"config": {"password": {"env": variable}}}
    )
    assert unset.json()["discovery_status"] == "failed"
    assert unset.json()["discovery_error"] == f"environment variable {variable} is not set"
    assert tables_of(client, conn_id) == ["public.orders"]  # a failed discovery removes nothing

    removed = client.patch(f"/connections/{conn_id}", json={"config": {"password": None}})
    assert removed.json()["discovery_status"] == "success"
    assert "password" not in client.get(f"/connections/{conn_id}").json()["config"]


def _shop_schemas(world: World) -> None:
    world.source.execute("CREATE SCHEMA sales", "CREATE SCHEMA hr")
    for table in ("public.orders", "public.customers", "sales.orders", "sales.tmp_load"):
        schema, name = table.split(".")
        world.source.execute(
            f"CREATE TABLE {schema}.{name} AS SELECT g.i AS id FROM generate_series(1, 4) g(i)"
        )
    world.source.execute("CREATE TABLE hr.salaries (id int)")


def test_include_and_exclude_patterns_scope_discovery_and_refreshes(
    pg: tuple[World, httpx.Client],
) -> None:
    world, client = pg
    _shop_schemas(world)
    source_type, config = world.source.registration()
    scoped = {**config, "include": ["public.orders", "sales"], "exclude": ["sales.tmp_*"]}
    created = client.post(
        "/connections", json={"name": "shop", "source_type": source_type, "config": scoped}
    )
    assert created.json()["tables_discovered"] == 2, created.text
    conn_id = created.json()["id"]
    assert tables_of(client, conn_id) == ["public.orders", "sales.orders"]

    # A connection's data refresh caches only the tables in scope; a schema refresh keeps it.
    refreshed = client.post("/refresh", json={"connection_id": conn_id, "data": True}).json()
    assert (refreshed["tables_refreshed"], refreshed["tables_failed"]) == (2, 0), refreshed
    schema = client.post("/refresh", json={"connection_id": conn_id}).json()
    assert (schema["tables_discovered"], schema["tables_removed"]) == (2, 0), schema
    files = {t.table_name + t.schema_name: t.parquet_path for t in world.catalog.list_tables()}

    # Narrowed: public.orders leaves through the catalog's normal path, its file after the grace.
    narrowed = client.patch(f"/connections/{conn_id}", json={"config": {"include": ["sales"]}})
    assert (narrowed.json()["tables_discovered"], narrowed.json()["tables_removed"]) == (1, 1)
    assert tables_of(client, conn_id) == ["sales.orders"]
    (pending,) = world.catalog.list_deletions()
    assert pending.path == files["orderspublic"]
    assert pending.delete_after > world.catalog.clock() + timedelta(seconds=GRACE - 60)
    # Still readable by running queries:
    assert world.storage.filesystem.exists(files["orderspublic"])
    assert count(client, '"shop"."public"."orders"').status_code == 404
    assert count(client, '"shop"."sales"."orders"').json()["rows"] == [[4]]
    assert world.catalog.get_table(conn_id, "sales", "orders").parquet_path == files["orderssales"]

    # Widened: every table but hr's and the temporary loads; what is cached stays cached.
    widened = client.patch(
        f"/connections/{conn_id}", json={"config": {"include": None, "exclude": ["hr", "*.tmp_*"]}}
    )
    assert (widened.json()["tables_added"], widened.json()["tables_removed"]) == (2, 0)
    assert tables_of(client, conn_id) == ["public.customers", "public.orders", "sales.orders"]
    assert world.catalog.get_table(conn_id, "sales", "orders").parquet_path == files["orderssales"]
    assert_nothing_leaks(cache_state(world.runtime))


def test_patterns_on_a_mariadb_connection(mariadb: tuple[World, httpx.Client]) -> None:
    world, client = mariadb
    database = world.source.schema
    for table in ("orders", "order_lines", "customers"):
        world.source.execute(f'CREATE TABLE "{table}" AS SELECT seq AS id FROM seq_1_to_2')
    source_type, config = world.source.registration()
    body = {
        "name": "maria",
        "source_type": source_type,
        "config": {**config, "include": [f"{database}.order*"]},
    }
    created = client.post("/connections", json=body).json()
    assert created["tables_discovered"] == 2, created
    conn_id = created["id"]
    excluded = client.patch(
        f"/connections/{conn_id}", json={"config": {"exclude": ["*.*_lines"]}}
    ).json()
    assert (excluded["tables_discovered"], excluded["tables_removed"]) == (1, 1), excluded
    assert tables_of(client, conn_id) == [f"{database}.orders"]
    assert count(client, f'"maria"."{database}"."orders"').json()["rows"] == [[2]]


def test_invalid_patterns_are_refused_by_name(pg: tuple[World, httpx.Client]) -> None:
    world, client = pg
    source_type, config = world.source.registration()
    for patterns, error in [
        ("public", "include: Input should be a valid list"),
        ([""], "include.0: String should have at least 1 character"),
        ([1], "include.0: Input should be a valid string"),
    ]:
        body = {"name": "p", "source_type": source_type, "config": {**config, "include": patterns}}
        response = client.post("/connections", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == f"connection 'p': invalid config: {error}"
    assert world.catalog.list_connections() == []


# -- the terminal of `make up` ------------------------------------------------------------------


def test_a_failed_registration_is_one_line_in_the_api_terminal(
    pg: tuple[World, httpx.Client],
) -> None:
    world, _client = pg
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "api", "--port", str(port)],
        env=runtime_env(world.runtime.settings),
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not _answers(f"{url}/health"):
            assert process.poll() is None and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.2)
        source_type, config = world.source.registration()
        body = {"name": "bad", "source_type": source_type, "config": {**config, "port": 1}}
        created = httpx.post(f"{url}/connections", json=body, timeout=60)
        assert created.json()["discovery_status"] == "failed", created.text
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert "Traceback" not in output, output
    failures = [line for line in output.splitlines() if "discovering" in line]
    assert len(failures) == 1, output
    cause = " ".join(created.json()["discovery_error"].split())
    assert failures[0].endswith(
        f"discovering the tables of connection {created.json()['id']} failed: {cause}"
    )


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 600
    except httpx.HTTPError:
        return False


def test_a_demo_whose_discovery_fails_is_one_line(pg: tuple[World, httpx.Client]) -> None:
    world, _client = pg
    data_dir = world.runtime.settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "demo.duckdb").write_text("not a DuckDB database")
    seeded = subprocess.run(
        [sys.executable, "-m", "app.demo", "--seed"],
        env={**runtime_env(world.runtime.settings), "PREFECT_LOGGING_LEVEL": "WARNING"},
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = seeded.stdout + seeded.stderr
    assert seeded.returncode == 0 and "Traceback" not in output, output
    (line,) = [line for line in output.splitlines() if line.strip()]
    assert line.startswith("freshcache: registered the demo connection 'demo' (id 1, "), line
    assert "but discovering its tables failed: connection 'demo': " in line, line
