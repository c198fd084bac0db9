"""The per-connection fetch limit: a Prefect global concurrency limit, shared by every process.

Each fetch holds one slot while it reads its table, whichever run it belongs to. The limit is
the user's: created with FRESHCACHE_REFRESH_CONCURRENCY slots when missing, never changed
afterwards (set it in the Prefect UI, Concurrency → Global).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prefect.client.orchestration import get_client

from orchestration.slots import KeptSlots, ensure_limit, holding_slot

# The slots kept by the run of many tables this context belongs to (task-runner threads copy it).
_run_slots: ContextVar[KeptSlots | None] = ContextVar("freshcache_run_slots", default=None)


def connection_limit_name(connection_id: int) -> str:
    return f"freshcache-connection-{connection_id}"


def ensure_connection_limit(connection_id: int, limit: int) -> None:
    """Create the connection's limit with `limit` slots, unless it exists already."""
    with get_client(sync_client=True) as client:
        ensure_limit(client, connection_limit_name(connection_id), limit)


@contextmanager
def slots_kept_by_run() -> Iterator[None]:
    """The fetches started in this block (a run of many tables, its task runs) keep their
    connection's slot from one table to the next while no other fetch waits for one."""
    with get_client(sync_client=True) as client:
        kept = KeptSlots(client)
        token = _run_slots.set(kept)
        try:
            yield
        finally:
            _run_slots.reset(token)
            kept.close()


@contextmanager
def connection_slot(connection_id: int, default_limit: int) -> Iterator[None]:
    """Hold one of the connection's fetch slots (its limit created with `default_limit`)."""
    name = connection_limit_name(connection_id)
    kept = _run_slots.get()
    with kept.slot(name, default_limit) if kept else holding_slot(name, default_limit):
        yield
