"""Which cleanup runs a queued deletion needs: one per bucket, none when an armed run covers it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from orchestration.scheduling import BUCKET_SECONDS, buckets_to_arm, cleanup_bucket

NOW = datetime(2026, 11, 29, 12, 0, 3, tzinfo=UTC)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def test_a_deletion_gets_the_bucket_at_or_after_its_due_time() -> None:
    bucket = cleanup_bucket(NOW + seconds(60), NOW)
    assert bucket >= NOW + seconds(60)
    assert bucket - (NOW + seconds(60)) < seconds(BUCKET_SECONDS)
    assert bucket.timestamp() % BUCKET_SECONDS == 0


def test_a_deletion_already_due_gets_the_next_bucket_from_now() -> None:
    assert cleanup_bucket(NOW - seconds(600), NOW) == datetime(2026, 11, 29, 12, 0, 10, tzinfo=UTC)


def test_deletions_in_one_bucket_share_one_run() -> None:
    dues = [NOW + seconds(60), NOW + seconds(61), NOW + seconds(62)]
    assert len(buckets_to_arm(dues, NOW, set())) == 1


def test_a_run_armed_later_than_a_deletion_covers_it() -> None:
    armed = {cleanup_bucket(NOW + seconds(60), NOW)}
    assert buckets_to_arm([NOW + seconds(30), NOW], NOW, armed) == set()


def test_a_run_about_to_start_covers_nothing_new() -> None:
    """It may already have read the queue: a deletion queued now needs its own run."""
    armed = {NOW + seconds(1)}
    assert buckets_to_arm([NOW], NOW, armed) == {cleanup_bucket(NOW, NOW)}


def test_deletions_far_apart_get_a_run_each() -> None:
    dues = [NOW + seconds(60), NOW + seconds(3600)]
    assert len(buckets_to_arm(dues, NOW, set())) == 2


def test_a_connection_run_schedules_the_cleanup_of_the_files_it_replaced(
    prefect_server: None, tmp_path: Path
) -> None:
    """Asked once for the whole run, the cleanup deployment gets a run when they fall due."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    from flows.cleanup import cleanup
    from flows.data import refresh_connection_data
    from orchestration.deployments import CLEANUP
    from tasks.schema import refresh_connection_schema
    from tests.source_dbs import create_numbered_table
    from tests.world import make_world, remove_deployment

    # A grace no other test uses: its buckets are this test's alone.
    with (
        make_world("sqlite", "duckdb", tmp_path, deletion_grace_seconds=4321) as world,
        get_client(sync_client=True) as client,
    ):
        deployment_id = cleanup.to_deployment(name=CLEANUP.deployment).apply()
        only_its_runs = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        try:
            for name in ("a", "b", "c"):
                create_numbered_table(world.source, name, 3)
            conn_id = world.register()
            refresh_connection_schema(world.runtime, conn_id)
            refresh_connection_data(conn_id)
            assert world.catalog.list_deletions() == []
            refresh_connection_data(conn_id)
            dues = [d.delete_after for d in world.catalog.list_deletions()]
            runs = client.read_flow_runs(deployment_filter=only_its_runs)
        finally:
            remove_deployment(client, deployment_id)
    assert len(dues) == 3
    scheduled = [r.expected_start_time for r in runs if r.state and r.state.is_scheduled()]
    assert all((r.idempotency_key or "").startswith("cleanup-due-") for r in runs)
    assert 1 <= len(scheduled) <= 2  # one bucket, or two when the swaps straddle a boundary
    assert all(any(at >= due for at in scheduled) for due in dues)
