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
    name = connection_limit_name(connection_id)
    with get_client(sync_client=True) as client:
        try:
            client.upsert_global_concurrency_limit_by_name(name, limit)
        except Exception:
            # Prefect's upsert reads, then creates: a run that started at the same moment may
            # have created it in between. The second call finds it and updates it.
            client.upsert_global_concurrency_limit_by_name(name, limit)


@contextmanager
def connection_slots(connection_id: int, slots: int = 1) -> Iterator[None]:
    """Hold `slots` of the connection's fetch slots."""
    with concurrency(connection_limit_name(connection_id), occupy=slots):
        yield
