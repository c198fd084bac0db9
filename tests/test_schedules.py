"""Scheduled runs happen: `freshcache up` as a user runs it, then nobody calls cleanup or refresh.

Issue 11: a fresh install's scheduler failed every minute and no scheduled run was ever
created, while every other test passed. Here the stack's own Prefect server schedules the runs
and its runner executes them; the scheduler's loops are shortened (the same code runs), so a
broken scheduler shows within seconds, and /health has to say so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import psutil  # type: ignore[import-untyped]
import pytest

from tests.stack import Stack, running_stack
from tests.test_crashed_runs import heartbeats_of

pytestmark = [pytest.mark.timeout(300), pytest.mark.long_file(290)]

T = TypeVar("T")

GRACE_SECONDS = 2
FAST_SCHEDULER = {
    "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
    "PREFECT_SERVER_SERVICES_SCHEDULER_RECENT_DEPLOYMENTS_LOOP_SECONDS": "1",
}
IDLE_SECONDS = 30
# A deletion is due after its grace; its cleanup run starts within a 10 s bucket and the
# runner's poll; issue 17 allows grace + 30 s.
DELETION_SLACK_SECONDS = 30
# Prefect's shortest; a run is marked Crashed after three of them went missing.
HEARTBEAT_SECONDS = 30


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("schedules")
    with running_stack(
        workdir,
        FRESHCACHE_DELETION_GRACE_SECONDS=str(GRACE_SECONDS),
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY=str(HEARTBEAT_SECONDS),
        **FAST_SCHEDULER,
    ) as running:
        yield running


def wait_for(what: str, probe: Callable[[], T | None], seconds: float) -> T:
    deadline = time.monotonic() + seconds
    while (found := probe()) is None or found is False:
        assert time.monotonic() < deadline, f"{what}: not within {seconds:.0f} s"
        time.sleep(0.5)
    return found


def cache_files(stack: Stack) -> set[Path]:
    return set((stack.workdir / "data" / "cache").rglob("*.parquet"))


def refresh_table(stack: Stack, table: str) -> None:
    body = {"connection_id": 1, "schema_name": "main", "table_name": table, "data": True}
    response = stack.post("/refresh", body)
    assert response.status_code == 200, response.text


def deployment_runs(stack: Stack, deployment: str, **flow_runs: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = stack.prefect(
        "POST",
        "/flow_runs/filter",
        {"deployments": {"name": {"any_": [deployment]}}, "flow_runs": flow_runs, "limit": 200},
    )
    return found


def flow_runs(stack: Stack, **flow_runs: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = stack.prefect(
        "POST", "/flow_runs/filter", {"flow_runs": flow_runs, "limit": 200}
    )
    return found


def test_an_idle_stack_creates_no_flow_runs(stack: Stack) -> None:
    """Issue 17: an idle `make up` creates at most one flow run per hour (the safety cleanup)."""
    idle_from = datetime.now(UTC)
    time.sleep(IDLE_SECONDS)
    ran = flow_runs(
        stack,
        start_time={"after_": idle_from.isoformat()},
        state={"type": {"not_any_": ["SCHEDULED"]}},
    )
    assert ran == [], [(r["name"], r["start_time"]) for r in ran]
    within_an_hour = flow_runs(
        stack,
        expected_start_time={
            "after_": idle_from.isoformat(),
            "before_": (idle_from + timedelta(hours=1)).isoformat(),
        },
    )
    assert len(within_an_hour) <= 1, [(r["name"], r["expected_start_time"]) for r in within_an_hour]


def test_a_superseded_file_is_deleted_after_its_grace_without_anyone_calling_cleanup(
    stack: Stack,
) -> None:
    refresh_table(stack, "products")
    first = cache_files(stack)
    refresh_table(stack, "products")
    live = cache_files(stack) - first
    assert len(first) == len(live) == 1
    queued_at = time.monotonic()

    wait_for(
        "the superseded file deleted",
        lambda: cache_files(stack) == live,
        GRACE_SECONDS + DELETION_SLACK_SECONDS,
    )
    print(f"superseded file gone {time.monotonic() - queued_at:.1f} s after it was replaced")

    def scheduled_cleanup_completed() -> bool:
        # The run the refresh asked for when it queued the file, not a manual one. The file goes
        # before the run reports its end, so its completion is waited for, not looked up once.
        completed = deployment_runs(
            stack, "freshcache-cleanup", state={"type": {"any_": ["COMPLETED"]}}
        )
        return any((run["idempotency_key"] or "").startswith("cleanup-due-") for run in completed)

    wait_for("the cleanup run the refresh scheduled, completed", scheduled_cleanup_completed, 30)


def test_a_user_schedule_with_parameters_produces_a_run_with_them(stack: Stack) -> None:
    deployment = stack.prefect("GET", "/deployments/name/refresh/freshcache-refresh")
    parameters = {"connection_id": 1, "schema_name": "main", "table_name": "customers"}
    parameters["data"] = True
    # Far enough ahead that the scheduler, on a loaded machine, sees it before it is due: a
    # schedule's time already past when the scheduler looks is skipped (Prefect schedules from now).
    soon = datetime.now(UTC) + timedelta(seconds=15)
    (schedule,) = stack.prefect(
        "POST",
        f"/deployments/{deployment['id']}/schedules",
        [
            {
                # One run soon, then hourly: one run to wait for.
                "schedule": {"interval": 3600, "anchor_date": soon.isoformat()},
                "active": True,
                "parameters": parameters,
            }
        ],
    )

    def user_runs(**flow_runs: Any) -> list[dict[str, Any]]:
        runs = deployment_runs(stack, "freshcache-refresh", **flow_runs)
        return [r for r in runs if r["auto_scheduled"] and r["parameters"] == parameters]

    try:
        wait_for("the scheduler creating the user's run", lambda: user_runs() or None, 60)
        try:
            (run,) = wait_for(
                "a completed run of the user's schedule",
                lambda: user_runs(state={"type": {"any_": ["COMPLETED"]}}) or None,
                120,
            )
        except AssertionError as late:
            states = [(r["name"], r["state_type"], r["expected_start_time"]) for r in user_runs()]
            raise AssertionError(f"{late}; the schedule's runs: {states}") from None
    finally:
        stack.prefect("DELETE", f"/deployments/{deployment['id']}/schedules/{schedule['id']}")
    assert run["name"] == "refresh connection_id=1 schema_name=main table_name=customers data=True"
    tables = {t["table_name"]: t for t in stack.get("/connections/1/tables").json()}
    assert tables["customers"]["synced"] is True


def test_health_says_the_scheduler_is_ok_when_scheduled_runs_happen(stack: Stack) -> None:
    deployment = stack.prefect("GET", "/deployments/name/cleanup/freshcache-cleanup")
    assert deployment_runs(stack, "freshcache-cleanup", state={"type": {"any_": ["SCHEDULED"]}})
    changed = datetime.fromisoformat(deployment["updated"])
    assert (datetime.now(UTC) - changed).total_seconds() > 2 * 5 + 1, "checked too early"
    health = stack.get("/health")
    assert health.status_code == 200, health.text
    assert health.json()["scheduler"] == "ok"


def test_health_says_the_scheduler_is_broken_when_schedules_produce_no_runs(
    tmp_path: Path,
) -> None:
    broken = {**FAST_SCHEDULER, "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false"}
    with running_stack(tmp_path, **broken) as stack:
        health = wait_for(
            "/health reporting the scheduler",
            lambda: (r := stack.get("/health")).status_code == 503 and r,
            60,
        )
        body = health.json()
        assert body["status"] == "degraded"
        assert (body["catalog"], body["prefect"]) == ("ok", "ok")
        assert body["scheduler"].startswith(
            "broken: deployment 'freshcache-cleanup' has an active schedule but no scheduled run"
        ), body


def test_a_table_with_a_target_stays_fresh_with_nobody_asking(stack: Stack) -> None:
    """Issue 16: a policy's max_staleness_seconds is kept by freshness runs that the policy
    change and each run schedule; without targets, no freshness run is left scheduled."""
    target = 30  # refreshed half its target early at most: ~15 s after each sync
    policy = "/connections/1/tables/main/products/policy"
    asked = datetime.now(UTC)
    response = stack.put(policy, {"max_staleness_seconds": target})
    assert response.status_code == 200, response.text

    def synced_after(moment: datetime) -> datetime | None:
        tables = {t["table_name"]: t for t in stack.get("/connections/1/tables").json()}
        synced = tables["products"]["last_sync"]
        at = None if synced is None else datetime.fromisoformat(synced)
        return at if at is not None and at > moment else None

    first = wait_for("a freshness run syncing products", lambda: synced_after(asked), 60)
    try:
        second = wait_for("products synced again", lambda: synced_after(first), 90)
    except AssertionError as late:
        runs = [
            (r["name"], r["state_name"], r["expected_start_time"], r["tags"])
            for r in deployment_runs(stack, "freshcache-freshness")
        ]
        raise AssertionError(f"{late}; the freshness runs: {runs}") from None
    print(f"products synced {(second - first).total_seconds():.1f} s apart (target {target} s)")
    assert second - first <= timedelta(seconds=target)
    runs = wait_for(
        "two completed freshness runs",
        lambda: (
            len(
                done := deployment_runs(
                    stack, "freshcache-freshness", state={"type": {"any_": ["COMPLETED"]}}
                )
            )
            >= 2
            and done
        ),
        60,
    )
    assert all(r["name"] == "freshness" for r in runs)

    cleared = stack.put(policy, {})
    assert cleared.status_code == 200, cleared.text
    deployment = stack.prefect("GET", "/deployments/name/freshness/freshcache-freshness")
    assert [s["active"] for s in deployment["schedules"]] == [False]
    scheduled = deployment_runs(
        stack, "freshcache-freshness", state={"type": {"any_": ["SCHEDULED"]}}
    )
    assert scheduled == [], scheduled


def test_a_run_that_stops_responding_is_marked_crashed(stack: Stack, pg_database: str) -> None:
    """A deployment run whose process stops (SIGSTOP: alive, so its runner sees nothing, but
    silent) is marked Crashed by the automation `freshcache up` created, after three missed
    heartbeats, instead of staying Running forever."""
    import psycopg

    from tests.services import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER

    source = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user={POSTGRES_USER} dbname={pg_database}"
    with psycopg.connect(source, autocommit=True) as pg:
        pg.execute(
            "CREATE VIEW slow AS SELECT g.i AS id FROM generate_series(1, 3) AS g(i) "
            "CROSS JOIN pg_sleep(600) AS s"
        )
    config = {
        "host": POSTGRES_HOST,
        "port": POSTGRES_PORT,
        "user": POSTGRES_USER,
        "database": pg_database,
    }
    registered = stack.post(
        "/connections", {"name": "slow", "source_type": "postgres", "config": config}
    )
    assert registered.status_code in (200, 201), registered.text
    body = {
        "connection_id": registered.json()["id"],
        "schema_name": "public",
        "table_name": "slow",
        "data": True,
    }
    accepted = stack.post("/refresh", body, wait=0)
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["flow_run_id"]
    wait_for("the run's first heartbeat", lambda: heartbeats(stack, run_id), 60)
    reader = wait_for("the run reading the slow view", lambda: reading(stack, source), 60)
    reader.suspend()
    try:
        silence = HEARTBEAT_SECONDS * 3
        state = wait_for(
            "the silent run marked Crashed",
            lambda: (
                (s := stack.prefect("GET", f"/flow_runs/{run_id}")["state"])["type"] == "CRASHED"
                and s
            ),
            silence + 60,
        )
    finally:
        reader.kill()
    assert f"No heartbeat for {silence} s" in state["message"], state


def heartbeats(stack: Stack, run_id: str) -> bool:
    return bool(stack.prefect("POST", "/events/filter", heartbeats_of(run_id))["events"])


def reading(stack: Stack, source: str) -> psutil.Process | None:
    """The flow-run process whose PostgreSQL session runs the slow view's query."""
    import psycopg

    with psycopg.connect(source, autocommit=True) as pg:
        ports = {
            row[0]
            for row in pg.execute(
                "SELECT client_port FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE '%slow%' "
                "AND pid <> pg_backend_pid()"
            )
        }
    for process in psutil.Process(stack.process.pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any(c.laddr and c.laddr.port in ports for c in process.net_connections("tcp")):
                return process
    return None
