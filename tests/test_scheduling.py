"""Which cleanup runs a queued deletion needs: one per bucket, none when an armed run covers it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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
