"""Freshness never goes backwards: of two overlapping refreshes of a table, the snapshot that
started later stays live, whichever finishes last.

The source is a real PostgreSQL database whose view `gated` holds its first read on an advisory
lock the test owns: refresh A starts first and reads the old rows, then waits at the source;
refresh B starts later, reads the new rows and finishes; then the test lets A finish.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.cleanup import delete_due_files
from tasks.schema import refresh_connection_schema
from tests.hostile_support import pg_admin, query_rows
from tests.http_server import serve
from tests.reliability_support import PROJECT_DIR, assert_nothing_leaks, cache_state, runtime_env
from tests.source_dbs import PostgresSource
from tests.world import World, make_world
from webhook.app import create_app

pytestmark = pytest.mark.long_file(45)

GATE_KEY = 4242
COUNT = 'SELECT count(*) FROM "src"."public"."gated"'


class Gate:
    """Advisory lock GATE_KEY on the source, held by the test: the view's first read waits on it."""

    def __init__(self, source: PostgresSource) -> None:
        self.database = source.database
        source.execute(
            "CREATE TABLE items AS SELECT i AS id, 'row ' || i AS label "
            "FROM generate_series(1, 3) AS g(i)",
            "CREATE SEQUENCE gate_reads",
            # A sequence, not a table: nextval survives the reader's rollback and is not
            # discovered as one more table of the connection.
            f"""CREATE FUNCTION gate() RETURNS int LANGUAGE plpgsql VOLATILE AS $$
            BEGIN
              IF nextval('gate_reads') = 1 THEN PERFORM pg_advisory_xact_lock_shared({GATE_KEY});
              END IF;
              RETURN 1;
            END $$""",
            "CREATE VIEW gated AS SELECT i.id, i.label FROM items AS i "
            "CROSS JOIN (SELECT gate() AS g) AS g",
        )
        self._holder = pg_admin(self.database)
        self._holder.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))

    def wait_for_the_held_read(self, timeout: float = 120) -> None:
        """Until the first read of `gated` waits at the source: its snapshot has started."""
        deadline = time.monotonic() + timeout
        with pg_admin(self.database) as conn:
            while True:
                row = conn.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND objid = %s AND NOT granted",
                    (GATE_KEY,),
                ).fetchone()
                if row and row[0]:
                    return
                assert time.monotonic() < deadline, "the first refresh never reached the source"
                time.sleep(0.1)

    def open(self) -> None:
        self._holder.execute("SELECT pg_advisory_unlock(%s)", (GATE_KEY,))

    def close(self) -> None:
        self._holder.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def gated_world(
    request: pytest.FixtureRequest, prefect_server: None, tmp_path: Path
) -> Iterator[tuple[World, Gate]]:
    with make_world(request.param, "postgres", tmp_path, deletion_grace_seconds=0) as world:
        assert isinstance(world.source, PostgresSource)
        gate = Gate(world.source)
        try:
            yield world, gate
        finally:
            gate.close()


def _in_background(call: Any) -> tuple[threading.Thread, list[httpx.Response]]:
    outcome: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: outcome.append(call()))
    thread.start()
    return thread, outcome


def _table_body(conn_id: int) -> dict[str, Any]:
    return {"connection_id": conn_id, "schema_name": "public", "table_name": "gated", "data": True}


def _assert_newer_snapshot_live_and_nothing_leaks(world: World, conn_id: int) -> None:
    live = world.catalog.get_table(conn_id, "public", "gated")
    state = cache_state(world.runtime)
    assert_nothing_leaks(state)
    cleaned = delete_due_files(world.runtime)
    assert cleaned.failed == []
    after = cache_state(world.runtime)
    assert after.files == after.referenced and not after.queued
    assert live.parquet_path in after.files


@pytest.mark.parametrize("first", ["table", "connection"])
def test_an_older_snapshot_finishing_last_is_superseded(
    gated_world: tuple[World, Gate], first: str
) -> None:
    """A (the table, or the whole connection) reads 3 rows and finishes last; B reads 4 rows."""
    world, gate = gated_world
    source_type, config = world.source.registration()
    with serve(create_app(world.runtime)) as client:
        created = client.post(
            "/connections", json={"name": "src", "source_type": source_type, "config": config}
        ).json()
        conn_id = created["id"]
        assert created["tables_discovered"] == 2, created  # items and gated
        body_a = (
            _table_body(conn_id) if first == "table" else {"connection_id": conn_id, "data": True}
        )
        thread_a, outcome_a = _in_background(lambda: client.post("/refresh", json=body_a))
        gate.wait_for_the_held_read()
        world.source.execute("INSERT INTO items VALUES (4, 'row 4')")

        b = client.post("/refresh", json=_table_body(conn_id))
        assert b.status_code == 200, b.text
        assert (b.json()["rows_synced"], b.json()["superseded"]) == (4, False)
        b_started = world.catalog.get_table(conn_id, "public", "gated").snapshot_started_at

        gate.open()
        thread_a.join(timeout=120)
        (a,) = outcome_a
        assert a.status_code == 200, a.text
        if first == "table":
            assert (a.json()["rows_synced"], a.json()["superseded"]) == (3, True), a.text
        else:
            result = a.json()
            assert (result["tables_refreshed"], result["tables_failed"]) == (2, 0), a.text
            assert result["tables_superseded"] == 1, a.text
        assert query_rows(client, COUNT) == [[4]], "the cache went back in time"
    table = world.catalog.get_table(conn_id, "public", "gated")
    assert table.snapshot_started_at == b_started
    _assert_newer_snapshot_live_and_nothing_leaks(world, conn_id)


SERVE_REFRESH = "from flows.refresh import refresh; refresh.serve(name='freshcache-refresh')"


def test_superseded_is_reported_the_same_in_deployment_mode(
    prefect_server: None, tmp_path: Path
) -> None:
    from tests.test_webhook_deployment import wait_for_deployment

    with make_world(
        "sqlite", "postgres", tmp_path, execution="deployment", deletion_grace_seconds=0
    ) as world:
        assert isinstance(world.source, PostgresSource)
        gate = Gate(world.source)
        conn_id = world.register()
        refresh_connection_schema(world.runtime, conn_id)
        env = {**runtime_env(world.runtime.settings), "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
        log = (tmp_path / "runner.log").open("w")
        runner = subprocess.Popen(
            [sys.executable, "-c", SERVE_REFRESH],
            env=env,
            cwd=PROJECT_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_deployment()
            with serve(create_app(world.runtime)) as client:
                accepted = client.post("/refresh?wait=0", json=_table_body(conn_id))
                assert accepted.status_code == 202, accepted.text
                gate.wait_for_the_held_read()
                world.source.execute("INSERT INTO items VALUES (4, 'row 4')")
                b = client.post("/refresh?wait=180", json=_table_body(conn_id))
                assert b.status_code == 200, b.text
                assert (b.json()["rows_synced"], b.json()["superseded"]) == (4, False)
                gate.open()
                status = _wait_finished(client, accepted.json()["status_url"])
                assert status["state"] == "Completed", status
                assert (status["result"]["rows_synced"], status["result"]["superseded"]) == (
                    3,
                    True,
                )
                assert query_rows(client, COUNT) == [[4]]
        finally:
            gate.close()
            runner.terminate()
            runner.wait(timeout=30)
            log.close()
        _assert_newer_snapshot_live_and_nothing_leaks(world, conn_id)


def _wait_finished(client: httpx.Client, status_url: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = client.get(status_url).json()
        if status["finished"]:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
