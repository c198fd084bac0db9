"""The query side saturated for FRESHCACHE_STRESS_SECONDS, through the real app over HTTP.

Two query slots, and more clients than that: aggregates over a cached table, runaway queries,
results cut by the byte limit in every format, queries over the memory budget, clients that
hang up mid-query, while the table is refreshed back to back and /health is asked. Every
answer must be one the contract allows (never a 500), every refresh must succeed, and when
the load stops every query the engine started has ended and been counted.

The memory budget is shared: while a query over it holds most of the memory, another query
may fail with 507 too.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow as pa
import pytest

from tests.http_server import serve
from tests.reliability_support import stress_seconds
from tests.source_dbs import create_numbered_table
from tests.test_query_limits import ARROW, RUNAWAY, eventually, raw_query
from tests.world import make_world
from webhook.app import create_app

ROWS = 5_000
TABLE = '"src"."main"."t"'
AGGREGATE = f"SELECT count(*), sum(id) FROM {TABLE}"
BIG = "SELECT range AS id, repeat('x', 50) AS pad FROM range(100000)"
OVER_BUDGET = "SELECT string_agg(repeat('x', 1000), ',') FROM range(1000000)"


def test_a_saturated_query_side_answers_within_the_contract(
    prefect_server: None, tmp_path: Path
) -> None:
    settings = {
        "query_concurrency": 2,
        "query_queue_seconds": 0.5,
        "query_memory_mb": 128,
        "query_byte_limit": 64 * 1024,
        "refresh_retries": 0,
    }
    with make_world("sqlite", "duckdb", tmp_path, **settings) as world:
        create_numbered_table(world.source, "t", ROWS)
        app = create_app(world.runtime)
        with serve(app) as client:
            source_type, config = world.source.registration()
            created = client.post(
                "/connections", json={"name": "src", "source_type": source_type, "config": config}
            ).json()
            engine = app.state.queries.engine
            statuses: Counter[tuple[str, int]] = Counter()
            problems: list[str] = []
            hung_up = 0
            lock = threading.Lock()
            stop = threading.Event()

            def record(kind: str, response: httpx.Response, allowed: set[int]) -> None:
                with lock:
                    statuses[kind, response.status_code] += 1
                    if response.status_code not in allowed:
                        problems.append(f"{kind}: {response.status_code} {response.text[:200]}")
                    elif response.status_code == 503 and "retry-after" not in response.headers:
                        problems.append(f"{kind}: 503 without Retry-After")

            def loop(kind: str, work: Callable[[httpx.Client], None]) -> Callable[[], None]:
                def run() -> None:
                    with httpx.Client(base_url=client.base_url, timeout=120) as own:
                        while not stop.is_set():
                            try:
                                work(own)
                            except Exception as exc:
                                with lock:
                                    problems.append(f"{kind}: {type(exc).__name__}: {exc}")

                return run

            def aggregate(http: httpx.Client) -> None:
                response = http.post("/query", json={"sql": AGGREGATE})
                record("aggregate", response, {200, 503, 507})
                if response.status_code == 200 and response.json()["rows"] != [
                    [ROWS, ROWS * (ROWS + 1) // 2]
                ]:
                    problems.append(f"aggregate: wrong answer {response.text[:200]}")

            def runaway(http: httpx.Client) -> None:
                body = {"sql": RUNAWAY, "timeout_seconds": 0.5}
                # 507: the memory all queries share was taken by another (over_budget) meanwhile.
                record("runaway", http.post("/query", json=body), {503, 504, 507})

            formats = itertools.cycle(["application/json", "text/csv", ARROW])

            def big(http: httpx.Client) -> None:
                accept = next(formats)
                response = http.post("/query", json={"sql": BIG}, headers={"accept": accept})
                record("big", response, {200, 503, 507})
                if response.status_code == 200:
                    rows = _rows(accept, response.content)
                    if not 0 < rows < 100_000 or len(response.content) > 64 * 1024:
                        problems.append(f"big {accept}: {rows} rows, {len(response.content)} B")

            def over_budget(http: httpx.Client) -> None:
                record("memory", http.post("/query", json={"sql": OVER_BUDGET}), {503, 507})

            def hang_up(_http: httpx.Client) -> None:
                nonlocal hung_up
                with raw_query(client, RUNAWAY):
                    time.sleep(random.uniform(0.05, 0.5))
                with lock:
                    hung_up += 1

            def refresh(http: httpx.Client) -> None:
                body = {"connection_id": created["id"], "schema_name": "main", "table_name": "t"}
                record("refresh", http.post("/refresh", json={**body, "data": True}), {200})

            def health(http: httpx.Client) -> None:
                response = http.get("/health")
                if response.json().get("status") not in ("ok", "degraded"):
                    problems.append(f"health: {response.text[:200]}")
                time.sleep(0.2)

            workers = [
                loop("aggregate", aggregate),
                loop("aggregate", aggregate),
                loop("aggregate", aggregate),
                loop("runaway", runaway),
                loop("runaway", runaway),
                loop("big", big),
                loop("memory", over_budget),
                loop("hang-up", hang_up),
                loop("refresh", refresh),
                loop("health", health),
            ]
            threads = [threading.Thread(target=work) for work in workers]
            for thread in threads:
                thread.start()
            time.sleep(stress_seconds())
            stop.set()
            for thread in threads:
                thread.join(timeout=120)
            assert not any(thread.is_alive() for thread in threads), "a client hangs"
            eventually(lambda: engine.running == 0, "every query ends once the load stops")
            outcomes = dict(engine.outcomes)
            print(
                f"\n[queries] {stress_seconds():g} s, 2 slots: {dict(sorted(statuses.items()))}, "
                f"{hung_up} clients hung up; the engine counted {outcomes}"
            )
            assert problems == []
            assert statuses["refresh", 200] >= 1
            assert statuses["aggregate", 200] >= 1 and statuses["runaway", 504] >= 1
            # Every query the engine started was answered or cancelled by its client going away.
            started = sum(
                n for (kind, status), n in statuses.items() if kind != "refresh" and status != 503
            )
            assert sum(outcomes.values()) - outcomes.get("cancelled", 0) == started, outcomes
            assert outcomes.get("cancelled", 0) <= hung_up
            assert outcomes.get("failed", 0) == 0
        spill = engine.spill_directory
    assert not spill.exists()


def _rows(accept: str, content: bytes) -> int:
    if accept == ARROW:
        return pa.ipc.open_stream(content).read_all().num_rows
    if accept == "text/csv":
        return len(list(csv.reader(io.StringIO(content.decode())))) - 1
    return len(json.loads(content)["rows"])


@pytest.fixture(autouse=True)
def _seeded() -> None:
    random.seed(14)
