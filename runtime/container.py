"""The composition root: a Runtime (settings, catalog, storage) and how an entry point gets one.

An entry point (a flow, a task, the app factory, a CLI command) obtains the runtime once and
passes it down; everything below it takes what it uses as arguments (docs/architecture.md).
Whoever runs a flow in-process says which runtime it uses with `runtime_scope`; a deployment's
flow-run process has no caller to say it, so its runtime is built from the environment, once.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from catalog import Catalog
from runtime.allocator import return_large_buffers_to_the_os
from runtime.settings import Settings, load_settings
from storage import CacheStorage


@dataclass
class ArmedCleanups:
    """The cleanup runs a runtime already asked Prefect for (orchestration/scheduling.py), so
    that its refreshes ask once per moment. A lost entry only costs one idempotent API call."""

    buckets: set[datetime] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    storage: CacheStorage
    armed_cleanups: ArmedCleanups = field(default_factory=ArmedCleanups)

    def close(self) -> None:
        self.catalog.dispose()


def build_runtime(settings: Settings) -> Runtime:
    """What a process needs to refresh and query; its C allocator set to stream tables."""
    return_large_buffers_to_the_os()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Runtime(
        settings=settings,
        catalog=Catalog.from_url(settings.resolved_catalog_url),
        storage=CacheStorage(settings.resolved_cache_url, s3_endpoint_url=settings.s3_endpoint_url),
    )


# Like Prefect's own run contexts: seen by whoever runs inside the block (Prefect's task-runner
# threads and Starlette's thread pool copy it), by nobody else; two scopes can coexist.
_scoped: ContextVar[Runtime | None] = ContextVar("freshcache_runtime", default=None)


@contextmanager
def runtime_scope(runtime: Runtime) -> Iterator[Runtime]:
    """Flows and tasks run inside this block use `runtime`."""
    token = _scoped.set(runtime)
    try:
        yield runtime
    finally:
        _scoped.reset(token)


# The process's runtime, for flow and task runs outside any scope: the only module-level state.
_process_lock = threading.Lock()
_process_runtime: Runtime | None = None


def entry_runtime() -> Runtime:
    """The runtime a flow or task uses, resolved once at its entry: the current scope's, else
    the process's, built from the FRESHCACHE_* environment on first use (a deployment run)."""
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    global _process_runtime
    with _process_lock:
        if _process_runtime is None:
            _process_runtime = build_runtime(load_settings())
        return _process_runtime
