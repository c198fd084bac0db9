"""The bench's freshcache: a catalog and cache in a temporary directory, its own Prefect server.

The settings travel as FRESHCACHE_* and PREFECT_API_URL environment variables, so the fresh
processes of the fetch figures run against the same catalog, cache and Prefect API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

from bench.data import Postgres
from bench.prefect_server import prefect_server
from runtime.container import Runtime, build_runtime, set_runtime
from runtime.settings import load_settings


@dataclass
class World:
    runtime: Runtime
    pg: Postgres
    tmp: Path
    _names = count(1)

    @property
    def concurrency(self) -> int:
        """Fetches at once per connection (FRESHCACHE_REFRESH_CONCURRENCY)."""
        return self.runtime.settings.refresh_concurrency

    def register(self, source_type: str, config: dict[str, Any], *, discover: bool = True) -> int:
        """A new connection (optionally discovered) with its fetch limit in place."""
        from tasks.concurrency import ensure_connection_limit
        from tasks.connections import register_connection
        from tasks.schema import refresh_connection_schema

        connection = register_connection(f"bench-{next(self._names)}", source_type, config)
        if discover:
            refresh_connection_schema(connection.id)
        ensure_connection_limit(connection.id, self.runtime.settings.refresh_concurrency)
        return connection.id


def quiet_environment() -> None:
    """Before Prefect is imported: no analytics, no log lines on the table's stdout."""
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_LOGGING_LEVEL"] = "ERROR"
    os.environ["PREFECT_SERVER_LOGGING_LEVEL"] = "ERROR"
    os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"


@contextmanager
def bench_world(tmp: Path, pg: Postgres, prefect_db: str) -> Iterator[World]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["FRESHCACHE_DATA_DIR"] = str(tmp / "data")
    os.environ["FRESHCACHE_CATALOG_URL"] = f"sqlite:///{tmp / 'catalog.db'}"
    os.environ["FRESHCACHE_CACHE_URL"] = str(tmp / "cache")
    # Replaced files wait longer than the bench runs: only the cleanup figure's files fall due.
    os.environ["FRESHCACHE_DELETION_GRACE_SECONDS"] = "86400"
    home = tmp / "prefect"
    home.mkdir()
    with (
        prefect_server(pg, home, prefect_db) as api,
        temporary_settings(updates={PREFECT_API_URL: api}),
    ):
        os.environ["PREFECT_API_URL"] = api  # for the fresh processes
        runtime = build_runtime(load_settings())
        previous = set_runtime(runtime)
        try:
            yield World(runtime, pg, tmp)
        finally:
            set_runtime(previous)
            runtime.close()
