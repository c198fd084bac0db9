"""Errors say enough and no more: every API error names the connection, the table and the cause,
and never a server path (data directory, cache root, catalog, a DuckDB file resolved on the
server), on both catalog backends."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.hostile_support import freezable_directory
from tests.http_server import serve
from tests.source_dbs import create_numbered_table
from tests.world import World, make_world
from webhook.app import create_app


@pytest.fixture(params=["sqlite", "postgresql"])
def frozen_cache_world(
    request: pytest.FixtureRequest,
    prefect_server: None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[World, httpx.Client, Callable[[bool], str]]]:
    """A world whose cache directory can be made unwritable (`freeze`), served from `tmp_path`:
    everything the server keeps is under it, and relative DuckDB paths resolve there."""
    monkeypatch.chdir(tmp_path)
    with (
        freezable_directory(tmp_path / "cache") as freeze,
        make_world(request.param, "duckdb", tmp_path, refresh_retries=0) as world,
        serve(create_app(world.runtime)) as client,
    ):
        yield world, client, freeze


def assert_no_server_path(text: str, server_dir: Path) -> None:
    for path in {str(server_dir), os.path.realpath(server_dir)}:
        assert path not in text, f"a server path in an API answer: {text}"


def register(client: httpx.Client, name: str, path: str) -> dict[str, object]:
    response = client.post(
        "/connections", json={"name": name, "source_type": "duckdb", "config": {"path": path}}
    )
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def test_errors_name_the_connection_table_and_cause_never_a_server_path(
    frozen_cache_world: tuple[World, httpx.Client, Callable[[bool], str]],
) -> None:
    world, client, freeze = frozen_cache_world
    server_dir = world.tmp_path
    answers: list[str] = []

    # Registration: a file DuckDB cannot open and a missing one, both given as relative paths.
    Path("notduck.duckdb").write_text("not a database")
    invalid = register(client, "notduck", "notduck.duckdb")
    missing = register(client, "missing", "nowhere/x.duckdb")
    for created, path in ((invalid, "notduck.duckdb"), (missing, "nowhere/x.duckdb")):
        answers.append(str(created["discovery_error"]))
        assert created["discovery_status"] == "failed", created
        assert f"connection '{created['name']}'" in answers[-1] and path in answers[-1]
    assert "not a valid DuckDB database file" in answers[0]
    assert "does not exist" in answers[1]

    # Storage: the cache directory stops taking writes after one table is cached.
    for table in ("orders", "customers"):
        create_numbered_table(world.source, table, 3)
    conn_id = register(client, "src", str(world.source.path.relative_to(server_dir)))["id"]
    body = {"connection_id": conn_id, "schema_name": "main", "table_name": "orders", "data": True}
    assert client.post("/refresh", json=body).status_code == 200
    cause = freeze(True)
    expected = f"the cache file of connection 'src', table main.{{table}}: {cause}"

    table_refresh = client.post("/refresh", json=body)
    answers.append(table_refresh.text)
    assert table_refresh.status_code == 500
    assert table_refresh.json()["error"] == f"cannot create {expected.format(table='orders')}"

    connection_refresh = client.post("/refresh", json={"connection_id": conn_id, "data": True})
    answers.append(connection_refresh.text)
    errors = {e["table_name"]: e["error"] for e in connection_refresh.json()["errors"]}
    assert errors == {t: f"cannot create {expected.format(table=t)}" for t in errors}
    assert set(errors) == {"orders", "customers"}

    lazy = client.post("/query", json={"sql": 'SELECT count(*) FROM "src"."main"."customers"'})
    answers.append(lazy.text)
    assert lazy.status_code == 500
    assert lazy.json()["error"] == f"cannot create {expected.format(table='customers')}"
    freeze(False)

    # Query: the live cache file vanished behind the catalog's back.
    live = world.catalog.get_table(conn_id, "main", "orders").parquet_path
    assert live is not None
    os.remove(live)
    vanished = client.post("/query", json={"sql": 'SELECT count(*) FROM "src"."main"."orders"'})
    answers.append(vanished.text)
    assert vanished.status_code == 500
    assert 'the cache file of "src"."main"."orders"' in vanished.json()["error"], vanished.text

    for answer in answers:
        assert_no_server_path(answer, server_dir)


@pytest.fixture(params=["sqlite", "postgresql"])
def served_world(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[tuple[World, httpx.Client]]:
    with (
        make_world(request.param, "duckdb", tmp_path) as world,
        serve(create_app(world.runtime)) as client,
    ):
        yield world, client


JSON = {"content-type": "application/json"}
BAD_BODIES = [
    # (content, headers, status, error)
    (
        b'{"sql": "SELECT 1",}',
        JSON,
        400,
        "request body is not valid JSON: "
        "Expecting property name enclosed in double quotes at line 1, column 20",
    ),
    (
        b'{\n  "connection_id": 1\n  "data": true\n}',
        JSON,
        400,
        "request body is not valid JSON: Expecting ',' delimiter at line 3, column 3",
    ),
    (b"", JSON, 400, "request body is empty: send a JSON object"),
    (
        b'{"sql": "SELECT 1"}',
        {},
        415,
        "request body must be JSON: send Content-Type: application/json (none was given)",
    ),
    (
        b'{"sql": "SELECT 1"}',
        {"content-type": "text/plain"},
        415,
        "request body must be JSON: send Content-Type: application/json (got text/plain)",
    ),
    (
        b"sql=SELECT+1",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "request body must be JSON: send Content-Type: application/json "
        "(got application/x-www-form-urlencoded)",
    ),
    (b"[1, 2]", JSON, 422, "request body must be a JSON object, not an array"),
    (b"null", JSON, 422, "request body must be a JSON object, not null"),
    (b'"SELECT 1"', JSON, 422, "request body must be a JSON object, not a string"),
]


def test_a_body_that_is_no_json_object_gets_its_own_clear_error(
    served_world: tuple[World, httpx.Client],
) -> None:
    world, client = served_world
    for route in ("/query", "/refresh", "/connections"):
        for content, headers, status, error in BAD_BODIES:
            response = client.post(route, content=content, headers=headers)
            assert (response.status_code, response.json()) == (status, {"error": error}), (
                route,
                content,
            )
    # A JSON type suffix is JSON too.
    vendor = client.post(
        "/query",
        content=b'{"sql": "SELECT 1 AS x"}',
        headers={"content-type": "application/x+json"},
    )
    assert vendor.status_code == 200 and vendor.json()["rows"] == [[1]]
    assert world.catalog.list_connections() == []


def test_messages_carry_no_pydantic_prefixes(served_world: tuple[World, httpx.Client]) -> None:
    world, client = served_world
    bad_password = client.post(
        "/connections",
        json={
            "name": "p",
            "source_type": "postgres",
            "config": {"host": "h", "user": "u", "database": "d", "password": {}},
        },
    )
    assert bad_password.status_code == 400
    assert bad_password.json()["error"] == (
        "connection 'p': invalid config: password: give exactly one of "
        '{"secret": "<block name>"} or {"env": "<VAR>"}'
    )
    with_password = client.post(
        "/connections",
        json={"name": "q", "source_type": "sqlalchemy", "config": {"url": "postgresql://u:pw@h/d"}},
    )
    assert with_password.status_code == 400
    assert "url: the url must not contain a password" in with_password.json()["error"]
    rule = client.post("/refresh", json={"schema_name": "public"})
    assert rule.json() == {"error": "schema_name requires connection_id"}
    for response in (bad_password, with_password, rule):
        assert "Value error" not in response.text and "pw" not in response.text.split("error")[0]
    assert world.catalog.list_connections() == []


def test_a_table_named_without_connection_and_schema_gets_the_naming_rule(
    served_world: tuple[World, httpx.Client],
) -> None:
    world, client = served_world
    create_numbered_table(world.source, "orders", 3)
    registered = register(client, "shop", str(world.source.path))
    assert registered["discovery_status"] == "success"
    rule = 'a query names each table as "<connection>"."<schema>"."<table>"'
    for sql, name, example in (
        ("SELECT * FROM orders", '"orders"', '"shop"."main"."orders"'),
        ("SELECT * FROM main.orders", '"main"."orders"', '"shop"."main"."orders"'),
        ('SELECT * FROM "shop".orders', '"shop"."orders"', '"shop"."main"."orders"'),
        ("SELECT * FROM customers", '"customers"', '"demo"."main"."orders"'),
    ):
        response = client.post("/query", json={"sql": sql})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error.startswith(f"no table {name}: {rule}, e.g. {example} "), error
        assert "Did you mean" not in error
    assert client.post(
        "/query", json={"sql": 'SELECT count(*) FROM "shop"."main"."orders"'}
    ).json()["rows"] == [[3]]
