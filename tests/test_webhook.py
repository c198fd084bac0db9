"""The HTTP contract through the real app over HTTP: refresh scenarios, connections, query."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.executors import HttpExecutor
from tests.http_server import serve
from tests.scenarios import SCENARIOS, Scenario
from tests.source_dbs import PostgresSource, create_numbered_table
from tests.world import World, make_world
from webhook.app import create_app

CATALOGS = ["sqlite", "postgresql"]


def catalog_contents(world: World) -> str:
    """What the catalog stores: its files (SQLite, with the -wal) or every row (PostgreSQL)."""
    from sqlalchemy import select

    from catalog.schema import metadata

    if world.catalog.engine.dialect.name == "sqlite":
        database = Path(world.runtime.settings.resolved_catalog_url.removeprefix("sqlite:///"))
        files = database.parent.glob(database.name + "*")
        return "".join(f.read_bytes().decode("latin-1") for f in files)
    with world.catalog.engine.connect() as conn:
        return "".join(
            repr(row) for table in metadata.sorted_tables for row in conn.execute(select(table))
        )


@pytest.fixture
def client(world: World) -> Iterator[httpx.Client]:
    with serve(create_app(world.runtime)) as http:
        yield http


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_refresh_scenario_over_http(world: World, client: httpx.Client, scenario: Scenario) -> None:
    scenario(world, HttpExecutor(client))


def register(client: httpx.Client, world: World, name: str = "src", **extra: object) -> dict:
    source_type, config = world.source.registration()
    response = client.post(
        "/connections", json={"name": name, "source_type": source_type, "config": config, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_connection_routes(world: World, client: httpx.Client) -> None:
    create_numbered_table(world.source, "orders", 7)
    created = register(client, world)
    assert set(created) == {
        "id",
        "name",
        "source_type",
        "tables_discovered",
        "discovery_status",
        "discovery_error",
    }
    assert (created["tables_discovered"], created["discovery_status"]) == (1, "success")
    conn_id = created["id"]

    duplicate = client.post(
        "/connections",
        json={"name": "src", "source_type": "duckdb", "config": {"path": "/x.duckdb"}},
    )
    assert duplicate.status_code == 409 and "src" in duplicate.json()["error"]
    bad_name = client.post(
        "/connections", json={"name": "a b", "source_type": "duckdb", "config": {"path": "/x"}}
    )
    assert bad_name.status_code == 400
    bad_config = client.post(
        "/connections", json={"name": "c2", "source_type": "postgres", "config": {"host": "h"}}
    )
    assert bad_config.status_code == 400 and "user" in bad_config.json()["error"]
    skipped = client.post(
        "/connections",
        json={
            "name": "later",
            "source_type": "duckdb",
            "config": {"path": "/nope.duckdb"},
            "discover": False,
        },
    ).json()
    assert (skipped["discovery_status"], skipped["tables_discovered"]) == ("skipped", 0)
    failed = client.post(
        "/connections",
        json={"name": "broken", "source_type": "duckdb", "config": {"path": "/nope.duckdb"}},
    ).json()
    assert failed["discovery_status"] == "failed" and "broken" in failed["discovery_error"]

    listed = client.get("/connections").json()
    assert [c["name"] for c in listed] == ["src", "later", "broken"]
    one = client.get(f"/connections/{conn_id}").json()
    assert (one["table_count"], one["cached_table_count"]) == (1, 0)
    tables = client.get(f"/connections/{conn_id}/tables").json()
    assert tables[0]["table_name"] == "orders" and tables[0]["synced"] is False
    assert [c["name"] for c in tables[0]["columns"]] == ["id", "label"]
    assert {"type", "nullable"} <= tables[0]["columns"][0].keys()

    query = client.post(
        "/query", json={"sql": f'SELECT count(*) AS n FROM "src"."{world.source.schema}"."orders"'}
    )
    assert query.json()["rows"] == [[7]]
    assert client.get(f"/connections/{conn_id}").json()["cached_table_count"] == 1
    path = world.catalog.get_table(conn_id, world.source.schema, "orders").parquet_path

    deleted = client.delete(f"/connections/{conn_id}")
    assert deleted.json() == {"id": conn_id, "deleted": True, "files_scheduled": 1}
    assert path in {d.path for d in world.catalog.list_deletions()}
    assert client.get(f"/connections/{conn_id}").status_code == 404
    assert client.get("/connections/999/tables").status_code == 404


def test_query_caches_on_first_use_and_follows_refreshes(
    world: World, client: httpx.Client
) -> None:
    create_numbered_table(world.source, "orders", 5)
    conn_id = register(client, world)["id"]
    s = world.source.schema
    sql = f'SELECT count(*) AS n, max(id) AS top FROM "src"."{s}"."orders"'
    first = client.post("/query", json={"sql": sql}).json()
    assert (
        first["columns"] == ["n", "top"] and first["rows"] == [[5, 5]] and first["row_count"] == 1
    )
    assert isinstance(first["execution_time_ms"], int)
    assert world.catalog.get_table(conn_id, s, "orders").parquet_path is not None

    world.source.execute(f"ALTER TABLE {s}.orders ADD COLUMN note TEXT")
    assert client.post("/refresh", json={"connection_id": conn_id}).json()["tables_modified"] == 1
    assert client.post("/query", json={"sql": sql}).json()["rows"] == [[5, 5]]

    world.source.execute(f"INSERT INTO {s}.orders VALUES (6, 'row 6', 'new')")
    body = {"connection_id": conn_id, "schema_name": s, "table_name": "orders", "data": True}
    assert client.post("/refresh", json=body).json()["rows_synced"] == 6
    assert client.post("/query", json={"sql": sql}).json()["rows"] == [[6, 6]]

    unknown = client.post("/query", json={"sql": f'SELECT * FROM "src"."{s}"."nope"'})
    assert unknown.status_code == 404 and "nope" in unknown.json()["error"]
    broken = client.post("/query", json={"sql": "SELEC 1"})
    assert broken.status_code == 400 and "syntax" in broken.json()["error"].lower()
    for sql in (
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "ATTACH '/tmp/x.db'",
    ):
        rejected = client.post("/query", json={"sql": sql})
        assert rejected.status_code == 400, (sql, rejected.text)


def test_unknown_fields_and_wrong_types(world: World, client: httpx.Client) -> None:
    typo = client.post("/refresh", json={"conection_id": 1})
    assert typo.status_code == 400 and "conection_id" in typo.json()["error"]
    wrong = client.post("/refresh", json={"connection_id": 1, "data": "yes"})
    assert wrong.status_code == 422 and "data" in wrong.json()["error"]
    extra = client.post("/query", json={"sql": "SELECT 1", "limit": 5})
    assert extra.status_code == 400
    assert world.catalog.list_connections() == []


def test_oversized_body_is_refused(world: World, client: httpx.Client) -> None:
    response = client.post(
        "/query",
        content=b'{"sql": "' + b"x" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413 and "error" in response.json()


def test_openapi_documents_every_route(world: World, client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/refresh",
        "/refresh/runs/{flow_run_id}",
        "/connections",
        "/connections/{connection_id}",
        "/connections/{connection_id}/tables",
        "/query",
        "/health",
    } <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


@pytest.fixture(params=CATALOGS)
def token_client(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[httpx.Client]:
    with (
        make_world(request.param, "duckdb", tmp_path, api_token="s3cret-token") as world,
        serve(create_app(world.runtime)) as http,
    ):
        yield http


def test_token_auth(token_client: httpx.Client) -> None:
    health = token_client.get("/health")
    assert health.status_code == 200, health.text
    assert token_client.get("/connections").status_code == 401
    wrong = token_client.get("/connections", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "missing or wrong bearer token"}
    assert token_client.post("/refresh", json={}).status_code == 401
    good = {"Authorization": "Bearer s3cret-token"}
    assert token_client.get("/connections", headers=good).json() == []
    assert token_client.post("/refresh", json={}, headers=good).status_code == 200


@pytest.fixture(params=CATALOGS)
def pg_client(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[tuple[World, httpx.Client]]:
    """A PostgreSQL source, on each catalog backend."""
    with (
        make_world(request.param, "postgres", tmp_path) as w,
        serve(create_app(w.runtime)) as http,
    ):
        yield w, http


def test_health_answers_during_a_slow_refresh(pg_client: tuple[World, httpx.Client]) -> None:
    world, client = pg_client
    assert isinstance(world.source, PostgresSource)
    world.source.execute(
        "CREATE VIEW slow AS SELECT g.i AS id FROM generate_series(1, 3) AS g(i) "
        "CROSS JOIN pg_sleep(4) AS s"
    )
    conn_id = register(client, world)["id"]
    body = {"connection_id": conn_id, "schema_name": "public", "table_name": "slow", "data": True}
    outcome: list[httpx.Response] = []
    refresher = threading.Thread(target=lambda: outcome.append(client.post("/refresh", json=body)))
    refresher.start()
    time.sleep(1.5)
    latencies = []
    while refresher.is_alive() and len(latencies) < 5:
        started = time.perf_counter()
        assert client.get("/health").json()["status"] == "ok"
        latencies.append(time.perf_counter() - started)
        time.sleep(0.2)
    refresher.join()
    assert outcome[0].status_code == 200 and outcome[0].json()["rows_synced"] == 3
    assert latencies, "the refresh finished before /health was asked"
    assert max(latencies) < 1.0, latencies


def test_password_never_leaves_the_secret_block(pg_client: tuple[World, httpx.Client]) -> None:
    from prefect.blocks.system import Secret

    world, client = pg_client
    password = "pw-Zq81-never-shown"
    source_type, config = world.source.registration()
    created = client.post(
        "/connections",
        json={
            "name": "secured",
            "source_type": source_type,
            "config": {**config, "password": password},
        },
    )
    assert created.status_code == 201, created.text
    conn_id = created.json()["id"]
    stored = world.catalog.get_connection(conn_id).config["password"]
    assert set(stored) == {"secret"}
    assert Secret.load(stored["secret"]).get() == password
    texts = [
        created.text,
        client.get("/connections").text,
        client.get(f"/connections/{conn_id}").text,
    ]
    texts.append(client.post("/refresh", json={"connection_id": conn_id}).text)
    assert all(password not in text for text in texts)
    assert password not in catalog_contents(world)
