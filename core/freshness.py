"""How fresh each table is against its target, and which tables a freshness run refreshes.

A table's target is its policy's `max_staleness_seconds`; its age is the time since its last
sync (the start of the read that produced its live snapshot, or the last incremental read that
found it current). A freshness run refreshes every table whose target falls due before `lead`
seconds from now (a table never synced is due at once), most overdue first, and the next run
is due when the soonest target of what remains falls due, `lead` seconds early.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from catalog import Catalog, Snapshot
from core import watermark
from core.policy import RefreshMode, RefreshPolicy, effective_policy
from sources import CursorValue


@dataclass(frozen=True)
class TableStatus:
    """A table's snapshot, its policy as set (not yet checked against the source) and its age."""

    snapshot: Snapshot
    policy: RefreshPolicy
    age_seconds: float | None  # None: never synced
    fresh: bool | None  # None: no target

    @property
    def mode(self) -> RefreshMode:
        return self.policy.mode or RefreshMode.FULL

    @property
    def high_water_mark(self) -> CursorValue | None:
        increments = self.snapshot.increments
        if increments is None or increments.high_water_mark is None:
            return None
        return watermark.from_json(increments.high_water_mark)

    def due_at(self, now: datetime, lead_seconds: float) -> datetime | None:
        """When a freshness run should start refreshing the table: `lead_seconds` (at most half
        the target) before its target falls due; now, if it was never synced. None: no target."""
        target = self.policy.max_staleness_seconds
        last_sync = self.snapshot.table.last_sync
        if target is None:
            return None
        if last_sync is None:
            return now
        return last_sync + timedelta(seconds=target - min(lead_seconds, target / 2))


def table_statuses(
    catalog: Catalog, now: datetime, connection_id: int | None = None
) -> list[TableStatus]:
    """Every table (of one connection, or of all) with its policy and age, in five statements."""
    snapshots = catalog.list_snapshots(connection_id)
    by_connection, by_table = catalog.policies(connection_id)
    statuses = []
    for snapshot in snapshots:
        table = snapshot.table
        policy = effective_policy(by_connection.get(table.connection_id), by_table.get(table.id))
        age = None if table.last_sync is None else (now - table.last_sync).total_seconds()
        target = policy.max_staleness_seconds
        fresh = None if target is None else age is not None and age <= target
        statuses.append(TableStatus(snapshot, policy, age, fresh))
    return statuses


@dataclass(frozen=True)
class Decision:
    """What a freshness run does with one table that has a target, and why."""

    status: TableStatus
    due_at: datetime
    refresh: bool
    reason: str

    @property
    def name(self) -> str:
        table = self.status.snapshot.table
        return f"{table.schema_name}.{table.table_name}"


def plan_freshness(
    statuses: list[TableStatus], now: datetime, lead_seconds: float, horizon_seconds: float = 0
) -> list[Decision]:
    """A decision for every table with a target, most overdue first: refresh those due now, or
    within `horizon_seconds` (before the next run could start)."""
    decisions = []
    horizon = now + timedelta(seconds=horizon_seconds)
    for status in statuses:
        due_at = status.due_at(now, lead_seconds)
        if due_at is None:
            continue
        target = status.policy.max_staleness_seconds
        if status.age_seconds is None:
            decisions.append(Decision(status, due_at, True, "never synced"))
        elif due_at <= horizon:
            over = status.age_seconds - (target or 0)
            reason = (
                f"{_seconds(over)} past its target"
                if over > 0
                else f"its target falls due in {_seconds(-over)}"
            )
            decisions.append(Decision(status, due_at, True, reason))
        else:
            wait = (due_at - now).total_seconds()
            decisions.append(Decision(status, due_at, False, f"fresh; due in {_seconds(wait)}"))
    return sorted(decisions, key=lambda d: (not d.refresh, d.due_at))


def next_run_at(
    statuses: list[TableStatus],
    now: datetime,
    lead_seconds: float,
    *,
    failed: frozenset[int] = frozenset(),
) -> datetime | None:
    """When the next freshness run is due: the soonest target of any table, `lead_seconds`
    early (None: no table has a target). A table whose refresh just failed (its id in `failed`)
    is retried no sooner than its lead from now, so a failing source is not hammered."""
    soonest = None
    for status in statuses:
        due_at = status.due_at(now, lead_seconds)
        if due_at is None:
            continue
        if status.snapshot.table.id in failed:
            target = status.policy.max_staleness_seconds or 0
            due_at = max(due_at, now + timedelta(seconds=max(min(lead_seconds, target / 2), 1)))
        soonest = due_at if soonest is None else min(soonest, due_at)
    return None if soonest is None else max(soonest, now)


def _seconds(value: float) -> str:
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.0f} min"
