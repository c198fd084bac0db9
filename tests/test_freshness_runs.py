"""The freshness flow: what it refreshes and in which order, and when it runs next.

The planning is plain code over the catalog; the flow runs in-process against the test Prefect
server; the scheduling of the next run goes to a real `freshcache-freshness` deployment there.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun
from prefect.schedules import Interval
from prefect.states import Running

from catalog import Catalog, DiscoveredTable
from core.freshness import next_run_at, plan_freshness, table_statuses
from core.policy import RefreshPolicy
from flows.freshness import freshness
from orchestration.deployments import FRESHNESS
from orchestration.freshness_runs import BUCKET_SECONDS, DUE_TAG, schedule_freshness
from tasks.schema import refresh_connection_schema
from tests.conftest import FakeClock
from tests.source_dbs import create_numbered_table
from tests.world import World, remove_deployment

SCHEMA = '[{"name":"id","nullable":false,"type":"int64"}]'


def tables_with_targets(
    catalog: Catalog, clock: FakeClock, targets: dict[str, float | None]
) -> int:
    """Connection `src` with one table per entry, each with that target (None: no policy)."""
    conn_id = catalog.add_connection("src", "duckdb", {"path": "/x.duckdb"}).id
    catalog.sync_tables(
        conn_id, [DiscoveredTable("public", n, SCHEMA) for n in targets], delete_after=clock.now
    )
    for name, target in targets.items():
        if target is not None:
            policy = RefreshPolicy(max_staleness_seconds=target)
            catalog.set_table_policy(conn_id, "public", name, policy.to_json())
    return conn_id


def sync(catalog: Catalog, conn_id: int, name: str, at: datetime) -> None:
    catalog.swap(
        conn_id, "public", name, f"/c/{name}-{at.timestamp()}.parquet",
        snapshot_started_at=at, delete_after=at, synced_at=at,
    )  # fmt: skip


def test_the_most_overdue_table_comes_first_and_the_next_run_follows_the_soonest_target(
    catalog: Catalog, clock: FakeClock
) -> None:
    targets = {"late": 60.0, "later": 60.0, "fresh": 600.0, "never": 60.0, "none": None}
    conn_id = tables_with_targets(catalog, clock, targets)
    now = clock.now
    sync(catalog, conn_id, "late", now - timedelta(seconds=100))
    sync(catalog, conn_id, "later", now - timedelta(seconds=300))
    sync(catalog, conn_id, "fresh", now - timedelta(seconds=60))
    sync(catalog, conn_id, "none", now - timedelta(days=9))

    decisions = plan_freshness(table_statuses(catalog, now), now, lead_seconds=30)
    assert [(d.name, d.refresh) for d in decisions] == [
        ("public.later", True),
        ("public.late", True),
        ("public.never", True),
        ("public.fresh", False),
    ]
    assert [d.reason for d in decisions] == [
        "4 min past its target",
        "40 s past its target",
        "never synced",
        "fresh; due in 8 min",
    ]
    # After those three refreshes, the soonest target is theirs: 60 s, less the lead (at most
    # half the target: 30 s).
    for name in ("late", "later", "never"):
        sync(catalog, conn_id, name, now)
    after = table_statuses(catalog, now)
    assert next_run_at(after, now, 30) == now + timedelta(seconds=30)
    assert next_run_at(after, now, 10) == now + timedelta(seconds=50)


def test_a_run_started_a_moment_early_refreshes_what_falls_due_before_the_next_bucket(
    catalog: Catalog, clock: FakeClock, freshness_deployment: UUID
) -> None:
    """A runner starts a run a moment before its scheduled time. Had the run skipped a table
    falling due in that moment, it would ask for its successor at its own moment: Prefect
    answers with the same run (same idempotency key), and the table would wait for the safety
    schedule."""
    conn_id = tables_with_targets(catalog, clock, {"soon": 30.0})
    now = clock.now
    sync(catalog, conn_id, "soon", now - timedelta(seconds=14.5))  # due at now + 0.5 s

    statuses = table_statuses(catalog, now)
    [(skipped, _)] = [(d.refresh, d.reason) for d in plan_freshness(statuses, now, 30)]
    [(refreshed, reason)] = [
        (d.refresh, d.reason) for d in plan_freshness(statuses, now, 30, BUCKET_SECONDS)
    ]
    assert (skipped, refreshed, reason) == (False, True, "its target falls due in 16 s")

    # Skipping it: this run, scheduled at the bucket of the table's due time and now running,
    # would ask for its successor at that same bucket. Prefect answers with this run.
    due = next_run_at(statuses, now, 30)
    assert due == now + timedelta(seconds=0.5)
    assert schedule_freshness(due) is not None
    (this_run,) = scheduled_runs(freshness_deployment)
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(this_run.id, Running(), force=True)
    schedule_freshness(due)
    assert scheduled_runs(freshness_deployment) == []  # no run would follow


def test_the_flow_refreshes_a_table_falling_due_before_its_next_bucket(
    world: World, freshness_deployment: UUID
) -> None:
    """The run itself, not only its plan: a table due a few seconds from now is refreshed."""
    create_numbered_table(world.source, "soon", 3)
    conn_id = world.register()
    refresh_connection_schema(world.runtime, conn_id)
    from tasks.refresh_table import refresh_table_now

    refresh_table_now(world.runtime, conn_id, world.source.schema, "soon")
    # A target of 8 s is refreshed its lead (half of it) early: due 4 s after the sync, which is
    # within the next bucket (BUCKET_SECONDS) of a run started right after it.
    policy = RefreshPolicy(max_staleness_seconds=2 * (BUCKET_SECONDS - 1))
    world.catalog.set_table_policy(conn_id, world.source.schema, "soon", policy.to_json())

    (table,) = freshness()["tables"]

    assert (table["table_name"], table["status"]) == ("soon", "refreshed")
    assert table["reason"].startswith("its target falls due in")


def test_a_failed_table_is_retried_after_its_lead_and_no_target_means_no_run(
    catalog: Catalog, clock: FakeClock
) -> None:
    conn_id = tables_with_targets(catalog, clock, {"broken": 600.0, "none": None})
    now = clock.now
    broken = catalog.get_table(conn_id, "public", "broken").id
    statuses = table_statuses(catalog, now)
    assert next_run_at(statuses, now, 30) == now  # never synced: at once
    assert next_run_at(statuses, now, 30, failed=frozenset({broken})) == now + timedelta(seconds=30)
    catalog.set_table_policy(conn_id, "public", "broken", None)
    assert next_run_at(table_statuses(catalog, now), now, 30) is None


@pytest.fixture
def freshness_deployment(prefect_server: None) -> Iterator[UUID]:
    """The freshness deployment as `freshcache up` registers it (its safety schedule active)."""
    deployment = freshness.to_deployment(
        name=FRESHNESS.deployment, schedules=[Interval(3600, active=True)]
    )
    deployment_id = deployment.apply()
    try:
        yield deployment_id
    finally:
        with get_client(sync_client=True) as client:
            remove_deployment(client, deployment_id)


def scheduled_runs(deployment_id: UUID) -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    return [r for r in runs if r.state is not None and r.state.is_scheduled() and DUE_TAG in r.tags]


def safety_active(deployment_id: UUID) -> bool:
    with get_client(sync_client=True) as client:
        (schedule,) = client.read_deployment_schedules(deployment_id)
    return schedule.active


def test_each_run_asks_for_one_next_run_at_the_soonest_due_time(freshness_deployment: UUID) -> None:
    soon = datetime.now(UTC) + timedelta(minutes=10)
    created = schedule_freshness(soon)
    assert created is not None and soon <= created < soon + timedelta(seconds=5)
    assert schedule_freshness(soon + timedelta(minutes=5)) is None  # covered by the earlier run
    assert [r.expected_start_time for r in scheduled_runs(freshness_deployment)] == [created]

    sooner = schedule_freshness(soon - timedelta(minutes=5))
    assert sooner is not None
    # The later run is redundant: the sooner one schedules its own successor.
    assert [r.expected_start_time for r in scheduled_runs(freshness_deployment)] == [sooner]
    assert safety_active(freshness_deployment)

    assert schedule_freshness(None) is None  # no targets: no run, no safety schedule
    assert scheduled_runs(freshness_deployment) == []
    assert not safety_active(freshness_deployment)
    schedule_freshness(soon)
    assert safety_active(freshness_deployment)


def test_the_flow_refreshes_what_is_due_and_reports_every_table_with_a_target(
    world: World, freshness_deployment: UUID
) -> None:
    schema = world.source.schema
    for name, rows in (("due", 3), ("fresh", 4), ("never", 5), ("untargeted", 6)):
        create_numbered_table(world.source, name, rows)
    conn_id = world.register()
    refresh_connection_schema(world.runtime, conn_id)
    result = freshness()
    assert (result["tables_with_target"], result["next_run_at"]) == (0, None)
    assert scheduled_runs(freshness_deployment) == []

    from tasks.refresh_table import refresh_table_now

    for name in ("due", "fresh"):
        refresh_table_now(world.runtime, conn_id, schema, name)
    for name, target in (("due", 0.001), ("fresh", 3600.0), ("never", 3600.0)):
        policy = RefreshPolicy(max_staleness_seconds=target)
        world.catalog.set_table_policy(conn_id, schema, name, policy.to_json())
    before = world.catalog.get_table(conn_id, schema, "due").last_sync

    result = freshness()

    by_name = {t["table_name"]: t for t in result["tables"]}
    assert set(by_name) == {"due", "fresh", "never"}
    assert (by_name["due"]["status"], by_name["due"]["rows_synced"]) == ("refreshed", 3)
    assert by_name["due"]["reason"].endswith("past its target")
    assert (by_name["never"]["status"], by_name["never"]["reason"]) == ("refreshed", "never synced")
    assert by_name["fresh"]["status"] == "skipped"
    assert by_name["fresh"]["reason"].startswith("fresh; due in")
    assert (result["tables_refreshed"], result["tables_failed"]) == (2, 0)
    assert world.catalog.get_table(conn_id, schema, "due").last_sync > before
    assert world.catalog.get_table(conn_id, schema, "never").parquet_path is not None
    # The next run: when `due` (a target of 1 ms) is due again, which is now.
    assert len(scheduled_runs(freshness_deployment)) == 1
    assert result["next_run_at"] is not None
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(limit=1, sort="CREATED_DESC")  # type: ignore[arg-type]
    assert artifact.key == "freshness" and "3 tables with a target" in (artifact.description or "")
