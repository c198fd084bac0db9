"""The bench's freshcache: a catalog and cache in a temporary directory, its own Prefect server.

The settings travel as FRESHCACHE_* and PREFECT_API_URL environment variables, so the fresh
processes of the fetch figures run against the same catalog, cache and Prefect API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

from bench.client import Address, address_of
from bench.data import Postgres
from bench.prefect_server import prefect_server
from bench.process import QUIET_LOGGING, serve_api
from runtime.container import Runtime, build_runtime, runtime_scope
from runtime.settings import load_settings


@dataclass
class World:
    runtime: Runtime
    pg: Postgres
    tmp: Path
    prefect_db: str  # what the bench's Prefect server runs on: postgres or sqlite
    _closing: ExitStack = field(default_factory=ExitStack)
    _api: Address | None = None
    _names = count(1)

    def api(self) -> Address:
        """The bench's `freshcache api` (inline execution, this world's settings), started on
        first use and stopped with the world."""
        if self._api is None:
            url, _server = self._closing.enter_context(serve_api())
            self._api = address_of(url)
        return self._api

    @property
    def concurrency(self) -> int:
        """Fetches at once per connection (FRESHCACHE_REFRESH_CONCURRENCY)."""
        return self.runtime.settings.refresh_concurrency

    def register(self, source_type: str, config: dict[str, Any], *, discover: bool = True) -> int:
        """A new connection (optionally discovered) with its fetch limit in place."""
        from core.connections import register_connection
        from orchestration.secrets import externalize_password
        from tasks.concurrency import ensure_connection_limit
        from tasks.schema import refresh_connection_schema

        connection = register_connection(
            self.runtime.catalog,
            externalize_password,
            f"bench-{next(self._names)}",
            source_type,
            config,
        )
        if discover:
            refresh_connection_schema(self.runtime, connection.id)
        ensure_connection_limit(connection.id, self.runtime.settings.refresh_concurrency)
        return connection.id


def quiet_environment() -> None:
    """Before Prefect is imported: no analytics, no log lines on the table's stdout."""
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.update(QUIET_LOGGING)


@contextmanager
def bench_world(tmp: Path, pg: Postgres, prefect_db: str) -> Iterator[World]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    os.environ["FRESHCACHE_DATA_DIR"] = str(tmp / "data")
    os.environ["FRESHCACHE_CATALOG_URL"] = f"sqlite:///{tmp / 'catalog.db'}"
    os.environ["FRESHCACHE_CACHE_URL"] = str(tmp / "cache")
    # Replaced files wait longer than the bench runs: only the cleanup figure's files fall due.
    os.environ["FRESHCACHE_DELETION_GRACE_SECONDS"] = "86400"
    # The query figure compacts its table of many delta files itself, after measuring it.
    os.environ["FRESHCACHE_COMPACT_AFTER_FILES"] = "1000"
    home = tmp / "prefect"
    home.mkdir()
    with (
        prefect_server(pg, home, prefect_db) as api,
        temporary_settings(updates={PREFECT_API_URL: api}),
    ):
        os.environ["PREFECT_API_URL"] = api  # for the fresh processes
        runtime = build_runtime(load_settings())
        world = World(runtime, pg, tmp, prefect_db)
        try:
            with runtime_scope(runtime), world._closing:
                yield world
        finally:
            runtime.close()
