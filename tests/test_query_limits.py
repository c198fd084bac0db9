"""POST /query under load, through the real app over HTTP: time limits, cancellation, memory,
result size, admission, and the result formats (JSON, CSV, Arrow IPC) within the same limits.

Nothing here measures speed: a query that ended is seen in the engine's own state (running
queries, outcomes), waited for with a generous bound.
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from query import QueryEngine
from tests.http_server import serve
from tests.source_dbs import create_numbered_table
from tests.world import World, make_world
from webhook.app import create_app

RUNAWAY = "SELECT sum(a.range * b.range) FROM range(300000) a, range(300000) b"
ARROW = "application/vnd.apache.arrow.stream"


@dataclass
class Served:
    world: World
    client: httpx.Client
    engine: QueryEngine

    def query(self, sql: str, accept: str | None = None, **body: Any) -> httpx.Response:
        headers = {"accept": accept} if accept else {}
        return self.client.post("/query", json={"sql": sql, **body}, headers=headers)

    def refresh_orders(self) -> httpx.Response:
        """POST /refresh of the table `orders`, its data."""
        connection_id = self.world.catalog.get_connection_by_name("src").id
        return self.client.post(
            "/refresh",
            json={
                "connection_id": connection_id,
                "schema_name": "main",
                "table_name": "orders",
                "data": True,
            },
        )


@pytest.fixture
def served(prefect_server: None, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Serve the app with the settings given; a DuckDB source with a table `orders` (5 rows)."""

    @contextmanager
    def start(**settings: Any) -> Iterator[Served]:
        with make_world("sqlite", "duckdb", tmp_path, **settings) as world:
            create_numbered_table(world.source, "orders", 5)
            app = create_app(world.runtime)
            with serve(app) as client:
                source_type, config = world.source.registration()
                created = client.post(
                    "/connections",
                    json={"name": "src", "source_type": source_type, "config": config},
                )
                assert created.status_code == 201, created.text
                yield Served(world, client, app.state.queries.engine)

    yield start


def eventually(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Wait for `condition`; the bound only keeps a broken build from hanging."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


@contextmanager
def raw_query(client: httpx.Client, sql: str) -> Iterator[socket.socket]:
    """POST /query on a socket of its own that the test can hang up on."""
    body = json.dumps({"sql": sql}).encode()
    with socket.create_connection((client.base_url.host, client.base_url.port)) as sock:
        sock.sendall(
            b"POST /query HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        yield sock


# -- time ---------------------------------------------------------------------------------------


def test_a_runaway_query_is_stopped_at_the_time_limit(served: Callable[..., Any]) -> None:
    with served(query_timeout_seconds=2) as s:
        response = s.query(RUNAWAY)
        assert response.status_code == 504, response.text
        assert "time limit of 2 s" in response.json()["error"]
        assert s.engine.running == 0  # stopped before the answer went out
        assert s.engine.outcomes["timeout"] == 1

        asked = s.query(RUNAWAY, timeout_seconds=0.5)
        assert asked.status_code == 504, asked.text
        assert "time limit of 0.5 s" in asked.json()["error"]
        assert s.engine.outcomes["timeout"] == 2

        too_long = s.query("SELECT 1", timeout_seconds=3)
        assert too_long.status_code == 400
        assert "at most 2" in too_long.json()["error"]
        assert s.query('SELECT count(*) FROM "src"."main"."orders"').json()["rows"] == [[5]]


def test_a_client_that_goes_away_cancels_its_query(served: Callable[..., Any]) -> None:
    with served(query_timeout_seconds=600) as s:
        with raw_query(s.client, RUNAWAY):
            eventually(lambda: s.engine.running == 1, "the query runs")
        eventually(lambda: s.engine.running == 0, "the query ends once its client is gone")
        assert s.engine.outcomes == {"cancelled": 1}
        assert s.query("SELECT 42").json()["rows"] == [[42]]


# -- memory -------------------------------------------------------------------------------------


def test_a_query_over_the_memory_budget_fails_and_the_server_carries_on(
    served: Callable[..., Any],
) -> None:
    with served(query_memory_mb=128, query_spill_mb=2048) as s:
        # One string of a gigabyte cannot spill.
        response = s.query("SELECT string_agg(repeat('x', 1000), ',') FROM range(1000000)")
        assert response.status_code == 507, response.text
        assert "128 MB" in response.json()["error"]
        assert s.engine.outcomes["memory"] == 1

        # A sort over the budget spills to disk and succeeds.
        spilled = s.query(
            "SELECT count(*), count(DISTINCT h) FROM "
            "(SELECT md5(range::VARCHAR) AS h FROM range(2000000) ORDER BY h)"
        )
        assert spilled.json().get("rows") == [[2_000_000, 2_000_000]], spilled.text
        assert s.engine.spill_directory.exists()
        assert s.query("SELECT 42").json()["rows"] == [[42]]
    assert not s.engine.spill_directory.exists()  # removed with the engine


# -- result size and formats --------------------------------------------------------------------

ROWS = "SELECT i AS id, repeat('x', 100) AS pad FROM range(1000) t(i)"


def test_the_byte_limit_truncates_every_format(served: Callable[..., Any]) -> None:
    limit = 4096
    with served(query_byte_limit=limit) as s:
        as_json = s.query(ROWS)
        body = as_json.json()
        assert len(as_json.content) <= limit
        assert body["truncated"] is True and 0 < body["row_count"] < 1000
        assert [row[0] for row in body["rows"]] == list(range(body["row_count"]))

        as_csv = s.query(ROWS, accept="text/csv")
        assert as_csv.headers["content-type"].startswith("text/csv")
        lines = list(csv.reader(io.StringIO(as_csv.text)))
        assert len(as_csv.content) <= limit
        assert lines[0] == ["id", "pad"] and 1 < len(lines) < 1001
        assert [int(line[0]) for line in lines[1:]] == list(range(len(lines) - 1))

        as_arrow = s.query(ROWS, accept=ARROW)
        assert len(as_arrow.content) <= limit
        table, truncated = read_arrow(as_arrow.content)
        assert truncated and 0 < table.num_rows < 1000
        assert table.column("id").to_pylist() == list(range(table.num_rows))

        huge = s.query("SELECT repeat('x', 100000) AS big")
        assert (huge.json()["rows"], huge.json()["truncated"]) == ([], True)
        assert s.query("SELECT 1").json()["truncated"] is False


def test_the_row_limit_applies_to_every_format(served: Callable[..., Any]) -> None:
    with served(query_row_limit=5) as s:
        assert s.query(ROWS).json()["row_count"] == 5
        assert len(list(csv.reader(io.StringIO(s.query(ROWS, accept="text/csv").text)))) == 6
        table, truncated = read_arrow(s.query(ROWS, accept=ARROW).content)
        assert (table.num_rows, truncated) == (5, True)
        exact, truncated = read_arrow(s.query("FROM range(5)", accept=ARROW).content)
        assert (exact.num_rows, truncated) == (5, False)


def test_results_as_arrow_and_csv(served: Callable[..., Any]) -> None:
    sql = (
        "SELECT id, label, id * 1.5 AS x, id % 2 = 0 AS even, [id, NULL] AS pair "
        'FROM "src"."main"."orders" ORDER BY id'
    )
    with served() as s:
        arrow = s.query(sql, accept=ARROW)
        assert arrow.headers["content-type"] == ARROW
        table, truncated = read_arrow(arrow.content)
        assert not truncated
        assert table.column_names == ["id", "label", "x", "even", "pair"]
        assert table.column("label").to_pylist() == [f"row {i}" for i in range(1, 6)]
        assert table.column("pair").to_pylist()[0] == [1, None]

        text = s.query(sql, accept="text/csv;q=0.9, application/json;q=0.1").text
        lines = list(csv.reader(io.StringIO(text)))
        assert lines[0] == ["id", "label", "x", "even", "pair"]
        assert lines[1] == ["1", "row 1", "1.5", "false", "[1,null]"]
        assert len(lines) == 6

        assert s.query(sql, accept="*/*").json()["rows"][0] == [1, "row 1", "1.5", False, [1, None]]
        refused = s.query(sql, accept="text/html")
        assert refused.status_code == 406 and "text/csv" in refused.json()["error"]
        broken = s.query("SELEC 1", accept=ARROW)
        assert broken.status_code == 400 and "syntax error" in broken.json()["error"]


def read_arrow(content: bytes) -> tuple[pa.Table, bool]:
    """The table an Arrow IPC stream holds, and whether it ends with the truncation marker."""
    reader = pa.ipc.open_stream(content)
    batches, truncated = [], False
    while True:
        try:
            batch, metadata = reader.read_next_batch_with_custom_metadata()
        except StopIteration:
            break
        batches.append(batch)
        truncated = truncated or bool(metadata and metadata.get(b"freshcache.truncated"))
    return pa.Table.from_batches(batches, schema=reader.schema), truncated


# -- admission ----------------------------------------------------------------------------------


def test_busy_slots_answer_503_while_refreshes_and_health_still_answer(
    served: Callable[..., Any],
) -> None:
    with served(query_concurrency=1, query_queue_seconds=0.5, query_timeout_seconds=600) as s:
        with raw_query(s.client, RUNAWAY):
            eventually(lambda: s.engine.running == 1, "the runaway query runs")
            busy = s.query("SELECT 1")
            assert busy.status_code == 503, busy.text
            assert int(busy.headers["retry-after"]) >= 1
            assert "query slots" in busy.json()["error"]

            health = s.client.get("/health")
            assert "status" in health.json()
            refreshed = s.refresh_orders()
            assert refreshed.status_code == 200, refreshed.text
            assert s.engine.running == 1  # all of that while the runaway kept its slot
        eventually(lambda: s.engine.running == 0, "the runaway ends with its client")
        assert s.query("SELECT 1").status_code == 200


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="thread ids from /proc")
def test_queries_run_at_the_lowest_cpu_priority_refreshes_do_not(
    served: Callable[..., Any],
) -> None:
    """A query's threads weigh least with the CPU scheduler: however many run, a refresh's
    thread (and the Prefect server it waits on) gets the CPU first, also the refresh threads
    that fetched a table for a query."""

    def niceness(prefix: str) -> set[int]:
        threads = [t for t in threading.enumerate() if t.name.startswith(prefix)]
        assert threads, f"no {prefix} thread"
        return {os.getpriority(os.PRIO_PROCESS, t.native_id or 0) for t in threads}

    own = os.getpriority(os.PRIO_PROCESS, 0)
    with served(query_timeout_seconds=600) as s:
        # The first query of a table fetches it: a refresh thread at work for a query thread.
        first = s.query('SELECT count(*) FROM "src"."main"."orders"')
        assert first.json()["rows"] == [[5]], first.text
        with raw_query(s.client, RUNAWAY):
            eventually(lambda: s.engine.running == 1, "the runaway query runs")
            refreshed = s.refresh_orders()
            assert refreshed.status_code == 200, refreshed.text
            assert niceness("freshcache-query") == {min(19, own + 19)}  # the lowest there is
            assert niceness("freshcache-inline") == {own}


def test_a_query_waits_for_a_slot(served: Callable[..., Any]) -> None:
    with served(query_concurrency=1, query_queue_seconds=60) as s:
        answers: list[httpx.Response] = []
        with raw_query(s.client, RUNAWAY):
            eventually(lambda: s.engine.running == 1, "the runaway query runs")
            waiting = threading.Thread(target=lambda: answers.append(s.query("SELECT 7")))
            waiting.start()
            time.sleep(0.5)  # gives the second query time to (wrongly) start
            assert s.engine.outcomes == {} and s.engine.running == 1
        waiting.join(timeout=60)
        assert answers[0].json()["rows"] == [[7]]
        # The engine counts a query once it is closed, just after its last byte went out.
        eventually(lambda: s.engine.running == 0, "the second query is closed")
        assert s.engine.outcomes == {"cancelled": 1, "completed": 1}
