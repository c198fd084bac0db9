"""The per-connection fetch limit: a Prefect global concurrency limit, shared by every flow run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency


def connection_limit_name(connection_id: int) -> str:
    return f"freshcache-connection-{connection_id}"


def ensure_connection_limit(connection_id: int, limit: int) -> None:
    """Create or resize the connection's limit, so fetches of overlapping runs share it."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(connection_limit_name(connection_id), limit)


@contextmanager
def connection_slot(connection_id: int) -> Iterator[None]:
    """Hold one of the connection's fetch slots."""
    with concurrency(connection_limit_name(connection_id), occupy=1):
        yield
