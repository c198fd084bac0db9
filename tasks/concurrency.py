"""The per-connection fetch limit: a Prefect global concurrency limit, shared by every process.

Each fetch holds one slot while it reads its table, whichever run it belongs to. The limit is
the user's: created with FRESHCACHE_REFRESH_CONCURRENCY slots when missing, never changed
afterwards (set it in the Prefect UI, Concurrency → Global).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client

from orchestration.slots import ensure_limit, holding_slot


def connection_limit_name(connection_id: int) -> str:
    return f"freshcache-connection-{connection_id}"


def ensure_connection_limit(connection_id: int, limit: int) -> None:
    """Create the connection's limit with `limit` slots, unless it exists already."""
    with get_client(sync_client=True) as client:
        ensure_limit(client, connection_limit_name(connection_id), limit)


@contextmanager
def connection_slot(
    connection_id: int, default_limit: int, *, yield_to_waiters: bool = False
) -> Iterator[None]:
    """Hold one of the connection's fetch slots (its limit created with `default_limit`).

    `yield_to_waiters` is for runs that fetch table after table: fetches already waiting for
    a slot of the connection go first.
    """
    with holding_slot(
        connection_limit_name(connection_id), default_limit, yield_to_waiters=yield_to_waiters
    ):
        yield
