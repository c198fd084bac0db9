"""What a data refresh of a table does: read it in full, or only what changed since its mark."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from catalog import Snapshot
from core.policy import RefreshMode, TablePolicy


@dataclass(frozen=True)
class RefreshPlan:
    incremental: bool
    reason: str


def plan_refresh(
    policy: TablePolicy, snapshot: Snapshot, now: datetime, *, full: bool = False
) -> RefreshPlan:
    """Incremental when the live snapshot was read the way the policy reads, else full."""
    increments = snapshot.increments
    if full:
        return RefreshPlan(False, "a full refresh was asked for")
    if not policy.incremental:
        return RefreshPlan(False, "mode full")
    if snapshot.table.parquet_path is None or increments is None:
        return RefreshPlan(False, "first load of an incremental table")
    if increments.schema_changed:
        return RefreshPlan(False, "the source's schema changed")
    if increments.high_water_mark is None:
        return RefreshPlan(False, "no cursor value read yet (an empty table, or only NULL cursors)")
    read_as = (increments.mode, increments.cursor_column, increments.primary_key)
    if read_as != (policy.mode.value, policy.cursor_column, policy.primary_key):
        return RefreshPlan(False, "the policy changed how the table is read")
    period = policy.full_refresh_every_seconds
    if (
        policy.mode is RefreshMode.MERGE
        and period is not None
        and now - increments.full_started_at >= timedelta(seconds=period)
    ):
        return RefreshPlan(False, "the periodic full refresh is due")
    return RefreshPlan(True, f"mode {policy.mode.value}")
