"""`freshcache api` runs its inline flow runs in a child process (flows/inline_process.py), away
from the GIL its queries hold: refreshes and lazy fetches answer as they do on threads of the
webhook's own process, errors keep their status and message, and a child that dies costs only
the runs it had in flight."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import pytest
from prefect.settings import PREFECT_API_URL

from tests.http_server import serve
from tests.source_dbs import create_numbered_table
from tests.world import World, make_world
from webhook.app import create_app
from webhook.runners import FlowRunnerFactory, child_process, threads_here

RUNNERS = [
    pytest.param(child_process, id="child-process"),
    pytest.param(threads_here, id="threads-here"),
]


@dataclass
class Served:
    world: World
    client: httpx.Client

    def refresh(self, table: str) -> httpx.Response:
        connection_id = self.world.catalog.get_connection_by_name("src").id
        schema = self.world.source.schema
        body = {"connection_id": connection_id, "schema_name": schema, "table_name": table}
        return self.client.post("/refresh", json={**body, "data": True})

    def count(self, table: str) -> httpx.Response:
        sql = f'SELECT count(*) FROM "src"."{self.world.source.schema}"."{table}"'
        return self.client.post("/query", json={"sql": sql})


@pytest.fixture
def served(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """Serve the app with a flow runner; `tables` of 5 rows registered as connection `src`."""
    # The child takes Prefect's settings from the environment, as `freshcache api` passes them.
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))

    @contextmanager
    def start(
        runner: FlowRunnerFactory, source_kind: str = "duckdb", tables: tuple[str, ...] = ()
    ) -> Iterator[Served]:
        with make_world("sqlite", source_kind, tmp_path, refresh_retries=0) as world:
            for table in tables:
                create_numbered_table(world.source, table, 5)
            with serve(create_app(world.runtime, flow_runner=runner)) as client:
                source_type, config = world.source.registration()
                created = client.post(
                    "/connections",
                    json={"name": "src", "source_type": source_type, "config": config},
                )
                assert created.status_code == 201, created.text
                yield Served(world, client)

    return start


def children(but: frozenset[int] = frozenset()) -> list[psutil.Process]:
    """This process's running children, but the pids `but` (the session's Prefect server)."""
    return [
        c
        for c in psutil.Process().children()
        if c.pid not in but and c.status() != psutil.STATUS_ZOMBIE
    ]


def inline_threads_here() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("freshcache-inline_")]


def test_refreshes_and_lazy_fetches_run_in_the_child_and_it_stops_with_the_app(
    served: Callable[..., Any],
) -> None:
    before = frozenset(c.pid for c in children())
    with served(child_process, tables=("orders", "customers")) as s:
        refreshed = s.refresh("orders")
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["rows_synced"] == 5
        assert s.count("orders").json()["rows"] == [[5]]
        lazy = s.count("customers")  # not cached yet: fetched first
        assert lazy.status_code == 200, lazy.text
        assert lazy.json()["rows"] == [[5]]
        assert s.world.catalog.get_table(1, "main", "customers").parquet_path is not None
        assert inline_threads_here() == []  # no flow ran on this process's threads
        assert len(children(but=before)) == 1, children(but=before)
    assert children(but=before) == []


@pytest.mark.parametrize("runner", RUNNERS)
def test_an_error_in_the_child_keeps_its_status_and_message(
    served: Callable[..., Any], runner: FlowRunnerFactory
) -> None:
    """A table dropped at the source after discovery: its error class takes other arguments
    than its message, so it is rebuilt, not unpickled, on the webhook's side."""
    with served(runner, tables=("orders", "gone")) as s:
        s.world.source.execute('DROP TABLE main."gone"')
        refresh = s.refresh("gone")
        assert refresh.status_code == 500, refresh.text
        assert refresh.json()["error"].startswith("connection 'src': "), refresh.text
        assert "gone" in refresh.json()["error"], refresh.text
        query = s.count("gone")
        assert (query.status_code, query.json()) == (500, refresh.json()), query.text
        assert s.refresh("orders").status_code == 200


def test_a_child_killed_mid_refresh_fails_that_refresh_only(served: Callable[..., Any]) -> None:
    """The refresh in flight answers 500 naming the stop; the table keeps its last version, and
    the next call starts a new child, at the webhook's CPU priority also when that call is a
    query's lazy fetch (query threads run at the lowest)."""
    before = frozenset(c.pid for c in children())
    with served(child_process, "postgres", tables=("orders", "spare")) as s:
        assert s.refresh("orders").status_code == 200
        live = s.world.catalog.get_table(1, "public", "orders").parquet_path
        s.world.source.execute(
            'CREATE OR REPLACE VIEW public."orders_view" AS '
            "SELECT g::BIGINT AS id FROM pg_sleep(5), generate_series(1, 3) AS g",
            'ALTER VIEW public."orders_view" RENAME TO "slow"',
        )
        discovered = s.client.post("/refresh", json={"connection_id": 1})
        assert discovered.status_code == 200, discovered.text
        (child,) = children(but=before)

        answers: list[httpx.Response] = []
        slow = threading.Thread(target=lambda: answers.append(s.refresh("slow")))
        slow.start()
        time.sleep(2)  # the fetch is waiting on pg_sleep(5)
        os.kill(child.pid, signal.SIGKILL)
        slow.join(timeout=60)
        assert answers[0].status_code == 500, answers[0].text
        assert "inline refresh process stopped (exit code -9)" in answers[0].json()["error"]
        assert s.world.catalog.get_table(1, "public", "slow").parquet_path is None

        lazy = s.count("spare")  # the first call since: a query thread needs the new child
        assert lazy.status_code == 200, lazy.text
        assert lazy.json()["rows"] == [[5]]
        (new_child,) = children(but=before)
        assert new_child.nice() == os.getpriority(os.PRIO_PROCESS, 0)

        again = s.refresh("orders")
        assert again.status_code == 200, again.text
        assert s.world.catalog.get_table(1, "public", "orders").parquet_path != live
        assert s.count("orders").json()["rows"] == [[5]]
        assert [c.pid for c in children(but=before)] != [child.pid]
