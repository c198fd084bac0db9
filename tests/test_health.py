"""GET /health answers within 2 s and names what is wrong; without Prefect, cached data serves.

The scheduler's side (runs that never get created) is shown end to end in test_schedules.py;
here the same check against the test Prefect server, which runs no scheduler at all.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Scheduled

from flows.refresh import refresh
from orchestration.health import PrefectApi, scheduler_problem
from tests.source_dbs import create_numbered_table
from tests.stack import free_port
from tests.world import World, make_world

pytestmark = pytest.mark.long_file(40)

HEALTH_BOUND_SECONDS = 2.0


@pytest.fixture
def cached_world(prefect_server: None, tmp_path: Path) -> Iterator[tuple[World, int]]:
    """A catalog and cache where table main.orders (5 rows) is cached."""
    with make_world("sqlite", "duckdb", tmp_path) as world:
        create_numbered_table(world.source, "orders", 5)
        conn_id = world.register()
        refresh(connection_id=conn_id)
        refresh(connection_id=conn_id, schema_name="main", table_name="orders", data=True)
        yield world, conn_id


@pytest.fixture
def api_without_prefect(cached_world: tuple[World, int]) -> Iterator[tuple[str, str, int]]:
    """`freshcache api` over that catalog, its PREFECT_API_URL pointing where nothing listens."""
    world, conn_id = cached_world
    settings = world.runtime.settings
    dead_prefect = f"http://127.0.0.1:{free_port()}/api"
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_API_URL": dead_prefect,
        "FRESHCACHE_DATA_DIR": str(settings.data_dir),
        "FRESHCACHE_CATALOG_URL": settings.resolved_catalog_url,
        "FRESHCACHE_CACHE_URL": settings.resolved_cache_url,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "freshcache api did not start"
            try:
                httpx.get(f"{url}/openapi.json", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield url, dead_prefect, conn_id
    finally:
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then re-raises the signal it caught: the conventional exit status.
        assert process.wait(timeout=15) in (0, -signal.SIGTERM), process.communicate()[0]


def test_without_prefect_health_answers_503_at_once_and_cached_tables_still_answer(
    api_without_prefect: tuple[str, str, int],
) -> None:
    url, dead_prefect, conn_id = api_without_prefect
    started = time.monotonic()
    health = httpx.get(f"{url}/health", timeout=10)
    assert time.monotonic() - started < HEALTH_BOUND_SECONDS
    assert health.status_code == 503
    body = health.json()
    assert body["status"] == "degraded"
    assert body["catalog"] == "ok"
    assert body["prefect"].startswith(f"unreachable at {dead_prefect}: "), body
    assert body["scheduler"].startswith("unknown"), body

    query = httpx.post(
        f"{url}/query", json={"sql": 'SELECT count(*) FROM "src"."main"."orders"'}, timeout=30
    )
    assert query.status_code == 200, query.text
    assert query.json()["rows"] == [[5]]

    body = {"connection_id": conn_id, "schema_name": "main", "table_name": "orders", "data": True}
    started = time.monotonic()
    refreshed = httpx.post(f"{url}/refresh", json=body, timeout=30)
    assert time.monotonic() - started < 5
    assert refreshed.status_code == 503
    assert refreshed.json()["error"].startswith(
        f"the Prefect API is not available: unreachable at {dead_prefect}: "
    )


async def _deployment_with_interval_schedule(name: str) -> UUID:
    async with get_client() as client:
        flow_id = await client.create_flow_from_name("health-check-flow")
        return await client.create_deployment(
            flow_id=flow_id,
            name=name,
            schedules=[
                DeploymentScheduleCreate(
                    schedule=IntervalSchedule(interval=timedelta(minutes=10)), active=True
                )
            ],
        )


async def _problem(now: datetime) -> str | None:
    async with get_client() as client:
        return await scheduler_problem(client, now=now)


def _problems_of(deployment: str, now: datetime) -> list[str]:
    """The scheduler problems naming `deployment`: the session's Prefect server is shared, and
    other tests' deployments may have problems of their own."""
    problem = asyncio.run(_problem(now))
    return [p for p in (problem or "").split("; ") if f"'{deployment}'" in p]


async def _delete_deployment(deployment_id: UUID) -> None:
    async with get_client() as client:
        await client.delete_deployment(deployment_id)


def test_a_schedule_without_runs_is_named_once_the_scheduler_had_its_time(
    prefect_server: None,
) -> None:
    deployment_id = asyncio.run(_deployment_with_interval_schedule("no-runs"))
    try:
        now = datetime.now(UTC)
        assert _problems_of("no-runs", now) == [], "reported before the scheduler had a pass"
        (an_hour_later,) = _problems_of("no-runs", now + timedelta(hours=1))
        assert an_hour_later.startswith(
            "broken: deployment 'no-runs' has an active schedule but no scheduled run"
        )
    finally:
        asyncio.run(_delete_deployment(deployment_id))


async def _schedule_a_run(deployment_id: UUID, at: datetime) -> None:
    async with get_client() as client:
        await client.create_flow_run_from_deployment(
            deployment_id, state=Scheduled(scheduled_time=at)
        )


def test_scheduled_runs_nobody_picks_up_are_reported_late(prefect_server: None) -> None:
    deployment_id = asyncio.run(_deployment_with_interval_schedule("nobody-runs-it"))
    try:
        now = datetime.now(UTC)
        asyncio.run(_schedule_a_run(deployment_id, now + timedelta(minutes=10)))
        assert _problems_of("nobody-runs-it", now + timedelta(hours=1)) == [
            "late: 1 scheduled runs of 'nobody-runs-it' waited over 5 min: "
            "no runner or worker picks them up"
        ]
        assert _problems_of("nobody-runs-it", now + timedelta(minutes=12)) == []
    finally:
        asyncio.run(_delete_deployment(deployment_id))


def test_api_without_prefect_url_starts_its_own_server_and_says_starting_meanwhile(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_PROFILE")}
    env.update(FRESHCACHE_DATA_DIR=str(tmp_path / "data"), PREFECT_HOME=str(tmp_path / "home"))
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    answers: list[tuple[int, str]] = []
    try:
        deadline = time.monotonic() + 120
        while not answers or answers[-1][0] != 200:
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, answers[-3:]
            try:
                started = time.monotonic()
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
                assert time.monotonic() - started < HEALTH_BOUND_SECONDS
                answers.append((health.status_code, health.json()["prefect"]))
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert "no PREFECT_API_URL; starting a Prefect server at http://127.0.0.1:" in output
    for status, prefect in answers[:-1]:
        assert status == 503
        assert prefect.startswith("starting: the Prefect server at http://127.0.0.1:"), prefect
    assert (tmp_path / "data" / "prefect").is_dir()  # its database lives in the data directory


def test_a_kept_connection_the_server_closes_does_not_make_prefect_unavailable() -> None:
    """A server that closes a kept-alive connection just as the next request arrives (its
    keep-alive timeout ran out) drops that request: the check asks again on a new connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    done = threading.Event()

    def serve_one_request_per_connection() -> None:
        while not done.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(None)
                for answer in (True, False):
                    request = b""
                    while b"\r\n\r\n" not in request:
                        request += connection.recv(4096) or b"\r\n\r\n"
                    if answer:
                        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    server = threading.Thread(target=serve_one_request_per_connection, daemon=True)
    server.start()

    async def two_checks() -> list[str | None]:
        async with PrefectApi() as prefect:
            return [await prefect.problem(timeout=5), await prefect.problem(timeout=5)]

    try:
        with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{port}/api"}):
            assert asyncio.run(two_checks()) == [None, None]
    finally:
        done.set()
        server.join(timeout=5)
        listener.close()
