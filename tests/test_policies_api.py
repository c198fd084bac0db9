"""Policies through the HTTP API: set, checked, shown, and obeyed by POST /refresh and /query."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.http_server import serve
from tests.world import World, make_world
from webhook.app import create_app


@pytest.fixture(params=["sqlite", "postgresql"])
def api(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[tuple[World, httpx.Client, int]]:
    """A PostgreSQL source with `orders` (id, amount, updated_at) and `notes` (no key)."""
    with (
        make_world(request.param, "postgres", tmp_path) as world,
        serve(create_app(world.runtime)) as http,
    ):
        world.source.execute(
            "CREATE TABLE orders (id integer PRIMARY KEY, amount integer, "
            "updated_at timestamptz NOT NULL)",
            "INSERT INTO orders SELECT i, i * 10, TIMESTAMPTZ '2026-01-01' + i * INTERVAL '1 h' "
            "FROM generate_series(1, 5) AS g(i)",
            "CREATE TABLE notes (body text, tags text[])",
        )
        source_type, config = world.source.registration()
        created = http.post(
            "/connections", json={"name": "shop", "source_type": source_type, "config": config}
        )
        assert created.status_code == 201, created.text
        yield world, http, created.json()["id"]


def tables_by_name(client: httpx.Client, conn_id: int) -> dict[str, dict[str, object]]:
    response = client.get(f"/connections/{conn_id}/tables")
    assert response.status_code == 200, response.text
    return {t["table_name"]: t for t in response.json()}


def refresh(client: httpx.Client, conn_id: int, table: str, **extra: object) -> dict[str, object]:
    body = {"connection_id": conn_id, "schema_name": "public", "table_name": table, "data": True}
    response = client.post("/refresh", json={**body, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def query(client: httpx.Client, sql: str, **extra: object) -> list[list[object]]:
    response = client.post("/query", json={"sql": sql, **extra})
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def test_a_merge_policy_takes_the_source_key_and_refreshes_by_it(
    api: tuple[World, httpx.Client, int],
) -> None:
    world, client, conn_id = api
    url = f"/connections/{conn_id}/tables/public/orders/policy"
    put = client.put(url, json={"mode": "merge", "cursor_column": "updated_at"})
    assert put.status_code == 200, put.text
    assert put.json()["effective"] == {
        "mode": "merge",
        "max_staleness_seconds": None,
        "cursor_column": "updated_at",
        "primary_key": ["id"],
        "lookback_seconds": 0.0,
        "full_refresh_every_seconds": None,
    }
    first = refresh(client, conn_id, "orders")
    assert (first["mode"], first["incremental"], first["rows_synced"]) == ("merge", False, 5)
    world.source.execute(
        "UPDATE orders SET amount = 999, updated_at = TIMESTAMPTZ '2026-02-01' WHERE id = 2",
        "INSERT INTO orders VALUES (6, 60, TIMESTAMPTZ '2026-02-01')",
    )
    second = refresh(client, conn_id, "orders")
    assert (second["incremental"], second["rows_synced"], second["files"]) == (True, 2, 2)
    rows = query(client, 'SELECT id, amount FROM "shop"."public"."orders" ORDER BY id')
    assert rows == [[1, 10], [2, 999], [3, 30], [4, 40], [5, 50], [6, 60]]

    shown = tables_by_name(client, conn_id)["orders"]
    assert shown["mode"] == "merge" and shown["file_count"] == 2
    assert shown["high_water_mark"] == "2026-02-01 00:00:00+00:00"
    assert shown["fresh"] is None and isinstance(shown["age_seconds"], float)

    forced = refresh(client, conn_id, "orders", full=True)
    assert (forced["incremental"], forced["reason"], forced["files"]) == (
        False,
        "a full refresh was asked for",
        1,
    )


@pytest.mark.parametrize(
    ("table", "body", "message"),
    [
        ("orders", {"mode": "append", "cursor_column": "nope"}, "cursor column 'nope'"),
        ("orders", {"mode": "append", "cursor_column": "amount", "lookback_seconds": 5}, "merge"),
        ("notes", {"mode": "merge", "cursor_column": "body"}, "cursor column 'body' is string"),
        ("notes", {"mode": "append", "cursor_column": "tags"}, "cursor column 'tags'"),
        ("orders", {"mode": "merge", "cursor_column": "id", "primary_key": ["x"]}, "'x'"),
    ],
)
def test_a_policy_that_does_not_fit_is_refused_naming_the_column(
    api: tuple[World, httpx.Client, int], table: str, body: dict[str, object], message: str
) -> None:
    _, client, conn_id = api
    response = client.put(f"/connections/{conn_id}/tables/public/{table}/policy", json=body)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"] and f"public.{table}" in response.json()["error"]
    assert tables_by_name(client, conn_id)[table]["policy"] == {}


def test_a_connection_default_must_fit_every_table_it_applies_to(
    api: tuple[World, httpx.Client, int],
) -> None:
    _, client, conn_id = api
    default = {"max_staleness_seconds": 600, "mode": "append", "cursor_column": "id"}
    refused = client.put(f"/connections/{conn_id}/policy", json=default)
    assert refused.status_code == 400
    assert refused.json()["error"] == "table public.notes: cursor column 'id' does not exist"
    full = client.put(f"/connections/{conn_id}/tables/public/notes/policy", json={"mode": "full"})
    assert full.status_code == 200, full.text
    accepted = client.put(f"/connections/{conn_id}/policy", json=default)
    assert accepted.status_code == 200, accepted.text
    assert client.get(f"/connections/{conn_id}/policy").json()["policy"] == default
    shown = tables_by_name(client, conn_id)
    assert (shown["orders"]["mode"], shown["orders"]["max_staleness_seconds"]) == ("append", 600)
    assert (shown["notes"]["mode"], shown["notes"]["fresh"]) == ("full", False)  # never synced
    assert client.put("/connections/999/policy", json={}).status_code == 404
    assert client.put(f"/connections/{conn_id}/policy", json={"mode": "x"}).status_code == 422
    typo = client.put(f"/connections/{conn_id}/policy", json={"max_stalenes_seconds": 1})
    assert typo.status_code == 400


def test_a_query_refreshes_tables_older_than_its_max_staleness(
    api: tuple[World, httpx.Client, int],
) -> None:
    world, client, conn_id = api
    put = client.put(
        f"/connections/{conn_id}/tables/public/orders/policy",
        json={"mode": "append", "cursor_column": "id"},
    )
    assert put.status_code == 200, put.text
    sql = 'SELECT count(*) FROM "shop"."public"."orders"'
    assert query(client, sql) == [[5]]  # the first query fetches it
    world.source.execute("INSERT INTO orders VALUES (6, 60, now())")
    assert query(client, sql) == [[5]]
    assert query(client, sql, max_staleness_seconds=3600) == [[5]]  # fresh enough
    assert query(client, sql, max_staleness_seconds=0) == [[6]]  # refreshed, incrementally
    assert tables_by_name(client, conn_id)["orders"]["file_count"] == 2
