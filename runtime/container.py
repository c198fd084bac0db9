"""The composition root: one Catalog and one CacheStorage per process, built from Settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from catalog import Catalog
from runtime.settings import Settings, load_settings
from storage import CacheStorage


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    storage: CacheStorage

    def close(self) -> None:
        self.catalog.dispose()


def build_runtime(settings: Settings) -> Runtime:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Runtime(
        settings=settings,
        catalog=Catalog.from_url(settings.resolved_catalog_url),
        storage=CacheStorage(settings.resolved_cache_url, s3_endpoint_url=settings.s3_endpoint_url),
    )


_lock = threading.Lock()
_current: Runtime | None = None


def get_runtime() -> Runtime:
    """The process's Runtime, built from the environment on first use."""
    global _current
    with _lock:
        if _current is None:
            _current = build_runtime(load_settings())
        return _current


def set_runtime(runtime: Runtime | None) -> Runtime | None:
    """Substitute the process's Runtime (tests); returns the previous one."""
    global _current
    with _lock:
        previous, _current = _current, runtime
        return previous
