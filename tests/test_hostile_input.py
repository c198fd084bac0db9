"""Hostile input: generated requests, hostile names, SQL injection and secrets (issue 8, part 4)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.hostile_support import state
from tests.http_server import serve
from tests.source_dbs import create_numbered_table
from tests.world import World, make_world
from webhook.app import create_app

pytestmark = pytest.mark.long_file(90)

# Generated requests per route and generation mode; FRESHCACHE_STRESS_EXAMPLES raises it.
FUZZ_EXAMPLES = int(os.environ.get("FRESHCACHE_STRESS_EXAMPLES", "25"))


@pytest.fixture(params=["sqlite", "postgresql"])
def duck_world(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[World]:
    """A DuckDB source, on each catalog backend (a PostgreSQL catalog has its own limits)."""
    with make_world(request.param, "duckdb", tmp_path, refresh_retries=0) as world:
        yield world


# -- schemathesis ----------------------------------------------------------------------------


@pytest.mark.timeout(max(300, FUZZ_EXAMPLES * 30))
def test_generated_requests_never_fail_the_server_or_change_state_when_rejected(
    duck_world: World,
) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    world = duck_world
    create_numbered_table(world.source, "orders", 5)
    with serve(create_app(world.runtime)) as client:
        seed = _seed(client, world)
        schema = schemathesis.openapi.from_url(f"{client.base_url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        statuses: Counter[tuple[str, int]] = Counter()
        started = time.monotonic()
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                label = f"{operation.method.upper()} {operation.path} ({mode.value})"

                @settings(
                    max_examples=FUZZ_EXAMPLES,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=operation.as_strategy(generation_mode=mode))
                def exercise(case: Any) -> None:
                    nonlocal seed
                    before = state(world)
                    response = case.call(base_url=str(client.base_url), timeout=120)
                    statuses[(label, response.status_code)] += 1  # noqa: B023 - runs right away
                    detail = f"{case.as_curl_command()} -> {response.status_code} {response.text}"
                    assert response.status_code < 500, detail
                    body = response.json()
                    if response.status_code >= 400:
                        assert isinstance(body.get("error"), str) and body["error"], detail
                        assert state(world) == before, f"rejected, yet state changed: {detail}"
                    seed = _restore(client, world, seed)

                try:
                    exercise()
                except Unsatisfiable:  # no invalid request exists (no parameters, no body)
                    statuses[(label, 0)] += 0
                print(f"  {label}: done after {time.monotonic() - started:.0f} s", flush=True)
        total = sum(statuses.values())
        print(f"\nschemathesis: {total} requests in {time.monotonic() - started:.0f} s")
        for (label, status), count in sorted(statuses.items()):
            print(f"  {label:40} {status}: {count}")
        assert total >= len(operations) * 2 * min(FUZZ_EXAMPLES, 10)


def _seed(client: httpx.Client, world: World) -> int:
    """A registered DuckDB connection named `seed` with its `orders` table cached."""
    source_type, config = world.source.registration()
    response = client.post(
        "/connections", json={"name": "seed", "source_type": source_type, "config": config}
    )
    assert response.status_code == 201, response.text
    rows = client.post("/query", json={"sql": 'SELECT count(*) FROM "seed"."main"."orders"'})
    assert rows.json()["rows"] == [[5]], rows.text
    return int(response.json()["id"])


def _restore(client: httpx.Client, world: World, seed: int) -> int:
    """Drop what generated requests registered; re-create the seed connection if one deleted it."""
    from core.connections import remove_connection

    for connection in world.catalog.list_connections():
        if connection.id != seed:
            remove_connection(world.runtime, connection.id)
    if any(c.id == seed for c in world.catalog.list_connections()):
        return seed
    return _seed(client, world)


# -- hostile schema, table and connection names ----------------------------------------------

VICTIM = "victim"
# Names every source accepts; each table gets a distinct row count so that data is traceable.
COMMON_NAMES = [
    "..",
    ".",
    "../../escape",
    "a/b",
    "/absolute",
    "back\\slash",
    'dq"uote',
    "it's",
    "back`tick",
    "semi;colon",
    f'x"; DROP TABLE {VICTIM}; --',
    "%2e%2e%2f",
    "tâble 日本 🚀",
    "select",
    "table",
    "from",
    "  spaced  ",
    "~",
]
EXTRA_NAMES = {
    # DuckDB resolves identifiers case-insensitively, so one spelling; it has no length limit.
    "duckdb": ["Mixed", "L" * 300],
    # PostgreSQL keeps names that differ only in case apart; it truncates names at 63 bytes.
    "postgres": ["Mixed", "mixed", "MIXED", "é" * 31 + "x", "l" * 63],
}
HOSTILE_SCHEMAS = ["../up", 'sch"ema;', "Ünïcode/スキーマ"]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create(world: World, schema: str, table: str, rows: int) -> None:
    world.source.execute(
        f"CREATE TABLE {_quote(schema)}.{_quote(table)} AS "
        f"SELECT i AS id, 'row ' || i AS label FROM generate_series(1, {rows}) AS g(i)"
    )


@pytest.fixture(
    params=[
        pytest.param(("sqlite", "duckdb"), id="sqlite-catalog+duckdb-source"),
        pytest.param(("postgresql", "postgres"), id="pg-catalog+pg-source"),
    ]
)
def name_world(request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path) -> Any:
    catalog_backend, source_kind = request.param
    with make_world(catalog_backend, source_kind, tmp_path, deletion_grace_seconds=0) as world:
        yield world


def test_hostile_schema_and_table_names_round_trip(name_world: World) -> None:
    from core.cleanup import delete_due_files
    from tests.hostile_support import all_files, assert_inside

    world = name_world
    kind, main = world.source.kind, world.source.schema
    expected: dict[tuple[str, str], int] = {}
    names = COMMON_NAMES + EXTRA_NAMES[kind]
    if kind == "duckdb":
        try:
            _create(world, main, "nul\0byte", 1)
            names.append("nul\0byte")
            world.source.execute(f"DROP TABLE {_quote(main)}.{_quote('nul' + chr(0) + 'byte')}")
        except Exception as exc:
            print(f"DuckDB refuses NUL in a table name ({type(exc).__name__}), not tried")
    for schema in HOSTILE_SCHEMAS:
        world.source.execute(f"CREATE SCHEMA {_quote(schema)}")
    targets = [(main, n) for n in names] + [(s, n) for s in HOSTILE_SCHEMAS for n in ("t", "..")]
    for number, (schema, table) in enumerate(targets, start=2):
        _create(world, schema, table, number)
        expected[(schema, table)] = number
    _create(world, main, VICTIM, 1)
    expected[(main, VICTIM)] = 1
    print(f"\n{kind}: {len(expected)} tables, e.g. {[t for _, t in targets[:6]]}")

    with serve(create_app(world.runtime)) as client:
        source_type, config = world.source.registration()
        created = client.post(
            "/connections", json={"name": "hostile", "source_type": source_type, "config": config}
        ).json()
        assert created["tables_discovered"] == len(expected), created
        conn_id = created["id"]
        listed = client.get(f"/connections/{conn_id}/tables").json()
        assert {(t["schema_name"], t["table_name"]) for t in listed} == set(expected)

        refreshed = client.post("/refresh", json={"connection_id": conn_id, "data": True}).json()
        assert (refreshed["tables_refreshed"], refreshed["errors"]) == (len(expected), []), (
            refreshed
        )
        for (schema, table), rows in expected.items():
            sql = (
                f"SELECT count(*), max(id), min(label) "
                f"FROM {_quote('hostile')}.{_quote(schema)}.{_quote(table)}"
            )
            assert _rows(client, sql) == [[rows, rows, "row 1"]], (schema, table)
        files = all_files(world.storage.root)
        assert len(files) == len(expected), "one file per table, none shared"
        assert_inside(world.storage.root, files)
        assert {t.parquet_path for t in world.catalog.list_tables()} == files
        if kind == "postgres":
            both = (
                f"SELECT (SELECT count(*) FROM hostile.{main}.{_quote('Mixed')}), "
                f"(SELECT count(*) FROM hostile.{main}.{_quote('mixed')})"
            )
            answer = client.post("/query", json={"sql": both})
            assert (answer.status_code, answer.json()) == (
                400,
                {
                    "error": f'"hostile".{_quote(main)}."Mixed" and '
                    f'"hostile".{_quote(main)}."mixed" differ only in case, which DuckDB does not '
                    "tell apart: "
                    "query them in separate queries"
                },
            ), answer.text

        deleted = client.delete(f"/connections/{conn_id}").json()
        assert deleted["files_scheduled"] == len(expected), deleted
    cleaned = delete_due_files(world.runtime)
    assert (len(cleaned.deleted), cleaned.failed) == (len(expected), [])
    assert all_files(world.storage.root) == set()
    assert world.catalog.counts() == {"connections": 0, "tables": 0, "pending_deletions": 0}
    world.source.execute(f"SELECT count(*) FROM {_quote(main)}.{VICTIM}")  # not dropped
    print(f"{kind}: discovered, refreshed, queried and deleted {len(expected)} hostile names")


def _rows(client: httpx.Client, sql: str) -> list[list[Any]]:
    response = client.post("/query", json={"sql": sql})
    assert response.status_code == 200, f"{sql}: {response.text}"
    return list(response.json()["rows"])


HOSTILE_CONNECTION_NAMES = [
    "..",
    "a/b",
    'x"',
    "x;y",
    "x`y",
    "",
    "n" * 64,
    "tâble",
    "nul\0",
    "a b",
    "../../etc",
    "-" * 64,
]


def test_hostile_connection_names_are_refused(duck_world: World) -> None:
    source_type, config = duck_world.source.registration()
    with serve(create_app(duck_world.runtime)) as client:
        before = state(duck_world)
        for name in HOSTILE_CONNECTION_NAMES:
            response = client.post(
                "/connections", json={"name": name, "source_type": source_type, "config": config}
            )
            assert response.status_code == 400, (name, response.text)
        assert state(duck_world) == before
    print(f"\n{len(HOSTILE_CONNECTION_NAMES)} hostile connection names refused with 400")


def test_connection_names_differing_only_in_case_stay_apart(duck_world: World) -> None:
    create_numbered_table(duck_world.source, "orders", 3)
    other = duck_world.tmp_path / "other.duckdb"
    from tests.source_dbs import DuckDBSource

    create_numbered_table(DuckDBSource(other), "orders", 9)
    with serve(create_app(duck_world.runtime)) as client:
        for name, path in (("Shop", duck_world.source.registration()[1]["path"]), ("shop", other)):
            response = client.post(
                "/connections",
                json={"name": name, "source_type": "duckdb", "config": {"path": str(path)}},
            )
            assert response.status_code == 201, response.text
        assert _rows(client, 'SELECT count(*) FROM "Shop".main.orders') == [[3]]
        assert _rows(client, 'SELECT count(*) FROM "shop".main.orders') == [[9]]
        both = client.post(
            "/query",
            json={"sql": 'SELECT * FROM "Shop".main.orders, "shop".main.orders LIMIT 1'},
        )
        assert (both.status_code, both.json()) == (
            400,
            {
                "error": '"Shop" and "shop" differ only in case, which DuckDB does not tell '
                "apart: query them in separate queries"
            },
        ), both.text


# -- SQL injection through POST /query -------------------------------------------------------

CANARY = "canary-7f3c2a9e-not-for-your-eyes"
INJECTIONS = [
    "SELECT * FROM read_csv('{canary}')",
    "SELECT * FROM read_csv_auto(['{canary}'])",
    "SELECT * FROM read_text('{canary}')",
    "SELECT * FROM read_blob('{canary}')",
    "SELECT * FROM read_json('{canary}')",
    "SELECT * FROM sniff_csv('{canary}')",
    "SELECT * FROM '{canary}'",
    "SELECT * FROM read_csv('{live}/../../../../../canary.csv')",
    "SELECT * FROM read_parquet('{root}/*/*/*/*.parquet')",
    "SELECT * FROM read_parquet('{other}')",
    "SELECT * FROM {table}, read_parquet('{other}')",
    "SELECT * FROM {table} UNION ALL SELECT 1, content FROM read_text('{canary}')",
    "SELECT * FROM glob('{outside}/*')",
    "SELECT * FROM glob('{root}/**')",
    "SELECT getenv('HOME')",
    "ATTACH '{outside}/stolen.duckdb' AS stolen",
    "COPY (SELECT * FROM {table}) TO '{outside}/copied.csv'",
    "COPY {table} TO '{outside}/copied.parquet' (FORMAT parquet)",
    "EXPORT DATABASE '{outside}/exported'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT 1; COPY (SELECT 1) TO '{outside}/second.csv'",
    "SELECT * FROM {table}; DROP VIEW {table}",
    "PRAGMA database_list",
    "SET enable_external_access = true",
    "SET allowed_paths = ['{canary}']",
    "CREATE TABLE {table} AS SELECT 1",
    "CALL pragma_version()",
    "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
]


def test_sql_injection_through_query_reads_and_writes_nothing_outside(duck_world: World) -> None:
    from tests.hostile_support import all_files

    world = duck_world
    outside = world.tmp_path / "outside"
    outside.mkdir()
    canary = outside / "canary.csv"
    canary.write_text(f"secret\n{CANARY}\n")
    create_numbered_table(world.source, "orders", 5)
    create_numbered_table(world.source, "other", 2)
    table = '"seed"."main"."orders"'
    with serve(create_app(world.runtime)) as client:
        _seed(client, world)
        client.post("/query", json={"sql": 'SELECT 1 FROM "seed"."main"."other"'})
        paths = {t.table_name: t.parquet_path for t in world.catalog.list_tables()}
        values = {
            "canary": canary,
            "outside": outside,
            "root": world.storage.root,
            "live": paths["orders"],
            "other": paths["other"],
            "table": table,
        }
        before_files, before = all_files(world.tmp_path), state(world)
        for template in INJECTIONS:
            sql = template.format(**values)
            response = client.post("/query", json={"sql": sql})
            print(f"\n{response.status_code} {sql[:90]!r}: {response.text[:120]}", end="")
            assert response.status_code == 400, f"{sql}: {response.text}"
            assert CANARY not in response.text
        print()
        assert state(world) == before
        created = all_files(world.tmp_path) - before_files
        assert {Path(p).name for p in created} <= {"catalog.db-wal", "catalog.db-shm"}, created
        assert _rows(client, f"SELECT count(*) FROM {table}") == [[5]]


# -- secrets ---------------------------------------------------------------------------------


def test_a_literal_password_never_leaks(
    prefect_server: None,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Grep every response, every log (ours, Prefect's, the process's output), every Prefect
    record and every file the run wrote (the SQLite catalog with its -wal, the cache)."""
    import asyncio
    import logging
    import uuid

    from flows.cleanup import cleanup
    from tests.hostile_support import pg_admin

    password = f"Pw-{uuid.uuid4().hex}-S3cr3t!"
    role = f"fc_secret_{uuid.uuid4().hex[:8]}"
    prefect_logger = logging.getLogger("prefect")
    prefect_logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO)
    seen: list[str] = []
    with make_world(
        "sqlite", "postgres", tmp_path, deletion_grace_seconds=0, refresh_retries=0
    ) as world:
        database = world.source.registration()[1]["database"]
        create_numbered_table(world.source, "orders", 3)
        create_numbered_table(world.source, "refunds", 2)
        with pg_admin() as admin:
            admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")  # type: ignore[arg-type]
        try:
            world.source.execute(
                f"GRANT SELECT ON orders TO {role}", f"GRANT SELECT ON refunds TO {role}"
            )
            config = {**world.source.registration()[1], "user": role, "password": password}
            with serve(create_app(world.runtime)) as client:
                calls = [
                    (
                        "POST",
                        "/connections",
                        {"name": "pg", "source_type": "postgres", "config": config},
                    ),
                    ("GET", "/connections", None),
                    ("GET", "/connections/1", None),
                    ("POST", "/refresh", {"connection_id": 1}),
                    ("POST", "/refresh", {"connection_id": 1, "data": True}),
                    ("POST", "/query", {"sql": 'SELECT count(*) FROM "pg"."public"."orders"'}),
                ]
                for method, url, body in calls:
                    seen.append(client.request(method, url, json=body).text)
                # Failures: a revoked grant (the read fails), an unreachable port, a bad password.
                world.source.execute(f"REVOKE SELECT ON refunds FROM {role}")
                failing = client.post(
                    "/refresh",
                    json={
                        "connection_id": 1,
                        "schema_name": "public",
                        "table_name": "refunds",
                        "data": True,
                    },
                )
                seen.append(failing.text)
                assert failing.status_code == 500 and "refunds" in failing.text, failing.text
                for name, extra in (
                    ("closed", {"port": 9}),
                    ("nodb", {"database": "nope_" + role}),
                ):
                    created = client.post(
                        "/connections",
                        json={
                            "name": name,
                            "source_type": "postgres",
                            "config": {**config, **extra},
                        },
                    )
                    seen.append(created.text)
                    assert created.json()["discovery_status"] == "failed", created.text
                seen.append(json.dumps(cleanup(orphan_min_age_seconds=0)))
                for connection in world.catalog.list_connections():
                    seen.append(client.delete(f"/connections/{connection.id}").text)
                seen.append(json.dumps(cleanup(orphan_min_age_seconds=0)))
            # Read while the catalog is open: its last writes are still in catalog.db-wal.
            written = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        finally:
            world.source.execute(f"DROP OWNED BY {role}")
            with pg_admin() as admin:
                admin.execute(f"DROP ROLE IF EXISTS {role}")  # type: ignore[arg-type]
    prefect_logger.removeHandler(caplog.handler)
    seen += [caplog.handler.format(record) for record in caplog.records]
    prefect_records = asyncio.run(_prefect_records())
    seen += prefect_records
    seen += capfd.readouterr()
    catalog_files = {p.name for p in written if p.name.startswith("catalog.db")}
    print(
        f"\ngrepped {len(seen)} responses, log lines, outputs and Prefect records",
        f"({len(prefect_records)} from the Prefect API); {len(written)} files",
        f"({sum(map(len, written.values()))} bytes, catalog: {sorted(catalog_files)})",
    )
    assert database and len(seen) > 20
    assert {"catalog.db", "catalog.db-wal"} <= catalog_files
    leaks = [text[:300] for text in seen if password in text]
    assert leaks == []
    assert [str(p) for p, data in written.items() if password.encode() in data] == []


async def _prefect_records() -> list[str]:
    """Every log, artifact, flow run and task run on the Prefect server, page by page."""
    from prefect.client.orchestration import get_client
    from prefect.logging.handlers import APILogHandler

    await APILogHandler.aflush()  # logs are sent in batches: the last ones may still be queued
    async with get_client() as client:
        logs = await _every_page(client.read_logs)
        artifacts = await _every_page(client.read_artifacts)
        flow_runs = await _every_page(client.read_flow_runs)
        task_runs = await _every_page(client.read_task_runs)
    return (
        [log.message for log in logs]
        + [json.dumps(a.data, default=str) + (a.description or "") for a in artifacts]
        + [
            json.dumps(r.parameters, default=str) + (r.state.message or "" if r.state else "")
            for r in flow_runs
        ]
        + [r.name + (r.state.message or "" if r.state else "") for r in task_runs]
    )


async def _every_page(read: Any, page: int = 200) -> list[Any]:
    """All records a Prefect client `read_*` method returns, `page` at a time."""
    records: list[Any] = []
    while True:
        batch = await read(limit=page, offset=len(records))
        records += batch
        if len(batch) < page:
            return records
