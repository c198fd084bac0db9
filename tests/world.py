"""A complete freshcache runtime for one test: catalog, cache, settings and a source database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pyarrow as pa
import pyarrow.parquet as pq

from catalog import Catalog
from runtime.container import Runtime, runtime_scope
from runtime.settings import Settings
from storage import CacheStorage
from tests.services import fresh_postgres_database, postgres_url
from tests.source_dbs import SourceDB, source_db

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient


@dataclass
class World:
    runtime: Runtime
    source: SourceDB
    tmp_path: Path

    @property
    def catalog(self) -> Catalog:
        return self.runtime.catalog

    @property
    def storage(self) -> CacheStorage:
        return self.runtime.storage

    def register(self, name: str = "src", source: SourceDB | None = None) -> int:
        """Register a source as a connection (no discovery) and return its id."""
        from core.connections import register_connection
        from orchestration.secrets import externalize_password

        source_type, config = (source or self.source).registration()
        connection_id = register_connection(
            self.catalog, externalize_password, name, source_type, config
        ).id
        forget_connection_limit(connection_id)
        return connection_id

    def cache_files(self) -> set[str]:
        return {f.path for f in self.storage.list_files()}

    def read_cache_file(self, path: str) -> pa.Table:
        """A cache file's contents, on local disk or S3."""
        with self.storage.filesystem.open(path, "rb") as handle:
            return pq.read_table(handle)


# The ids a fresh catalog gives its first connections.
FIRST_CONNECTION_IDS = range(1, 4)


def remove_deployment(client: SyncPrefectClient, deployment_id: UUID) -> None:
    """Delete a deployment a test created, and every run of it, from the session's Prefect
    server: later tests must not meet its runs (scheduled ones, never picked up, make /health
    report them late; a refresh would arm runs of an orphaned cleanup deployment)."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    its_runs = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    for run in client.read_flow_runs(deployment_filter=its_runs):
        client.delete_flow_run(run.id)
    client.delete_deployment(deployment_id)


def forget_connection_limit(connection_id: int) -> None:
    """Delete a Prefect limit left by an earlier test's connection of the same id.

    The limit is the user's once created (never resized), and connection ids repeat across
    the tests' fresh catalogs: each test's connection starts with the limit its settings say.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        from tests.reliability_support import reset_connection_limit

        reset_connection_limit(connection_id)


@contextmanager
def make_world(
    catalog_backend: str, source_kind: str, tmp_path: Path, **settings: Any
) -> Iterator[World]:
    """A Runtime, and flows run in this context use it (`runtime_scope`); `settings` override
    the defaults (a local cache under `tmp_path`; `cache_url="s3://..."` with `s3_endpoint_url`
    for S3)."""
    with ExitStack() as stack:
        if catalog_backend == "sqlite":
            catalog_url = f"sqlite:///{tmp_path / 'catalog.db'}"
        else:
            catalog_url = postgres_url(stack.enter_context(fresh_postgres_database()))
        config = Settings(
            data_dir=tmp_path / "data",
            catalog_url=catalog_url,
            **{"cache_url": str(tmp_path / "cache"), **settings},
        )
        runtime = Runtime(
            settings=config,
            catalog=Catalog.from_url(catalog_url),
            storage=CacheStorage(config.resolved_cache_url, s3_endpoint_url=config.s3_endpoint_url),
        )
        stack.callback(runtime.close)
        stack.enter_context(runtime_scope(runtime))
        # Connections registered over HTTP get these ids too: none inherits an earlier limit.
        for connection_id in FIRST_CONNECTION_IDS:
            forget_connection_limit(connection_id)
        source = stack.enter_context(source_db(source_kind, tmp_path))
        yield World(runtime, source, tmp_path)
