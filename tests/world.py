"""A complete freshcache runtime for one test: catalog, cache, settings and a source database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog import Catalog
from runtime.container import Runtime, set_runtime
from runtime.settings import Settings
from storage import CacheStorage
from tests.services import fresh_postgres_database, postgres_url
from tests.source_dbs import SourceDB, source_db


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
        from tasks.connections import register_connection

        source_type, config = (source or self.source).registration()
        return register_connection(name, source_type, config).id

    def cache_files(self) -> set[str]:
        return {f.path for f in self.storage.list_files()}


@contextmanager
def make_world(
    catalog_backend: str, source_kind: str, tmp_path: Path, **settings: Any
) -> Iterator[World]:
    with ExitStack() as stack:
        if catalog_backend == "sqlite":
            catalog_url = f"sqlite:///{tmp_path / 'catalog.db'}"
        else:
            catalog_url = postgres_url(stack.enter_context(fresh_postgres_database()))
        config = Settings(
            data_dir=tmp_path / "data",
            catalog_url=catalog_url,
            cache_url=str(tmp_path / "cache"),
            **settings,
        )
        runtime = Runtime(
            settings=config,
            catalog=Catalog.from_url(catalog_url),
            storage=CacheStorage(config.resolved_cache_url),
        )
        stack.callback(runtime.close)
        previous = set_runtime(runtime)
        stack.callback(set_runtime, previous)
        source = stack.enter_context(source_db(source_kind, tmp_path))
        yield World(runtime, source, tmp_path)
