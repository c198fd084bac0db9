"""Flow runs in this process: inline execution (the webhook's, in a process of its own:
flows/inline_process.py) and `freshcache cleanup`.

Prefect's flow-run heartbeats let an automation mark a run as crashed when its process dies
without saying so. An inline run's process is the webhook or the CLI itself, so they are off
here: and a run with them ends by joining their thread, which sleeps in 1 s steps (measured:
an empty flow 1.1 s with them, 0.09 s without). Runs of the deployments keep them: every 60 s
under `freshcache up` (app/up.py), with the automation that acts on them
(orchestration/crashed_runs.py).
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

from prefect.context import SettingsContext, SyncClientContext, get_settings_context

from runtime.container import Runtime

T = TypeVar("T")


@contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flow runs started in this block (in this thread) send no heartbeats."""
    current = get_settings_context()
    # A copy, not prefect's temporary_settings: that re-reads every setting (~0.1 s).
    flows = current.settings.flows.model_copy(update={"heartbeat_frequency": None})
    settings = current.settings.model_copy(update={"flows": flows})
    with SettingsContext(profile=current.profile, settings=settings):
        yield


class FlowRunner(ABC):
    """Runs `fn(runtime, *args)` in a runtime of its own choosing, where flow runs are cheap."""

    @abstractmethod
    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """`fn(runtime, *args)`, started."""

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(runtime, *args)`, awaited without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(runtime, *args)`, waited for by the calling thread."""
        return self.submit(fn, *args).result()

    @abstractmethod
    def close(self) -> None:
        """Wait for the runs in progress, then let go of what it holds."""


class InlineRunner(FlowRunner):
    """Runs flows in this process, in `runtime`, on threads that keep one Prefect client each.

    A flow run outside a client context opens a client of its own: a TLS context and a
    CSRF-token request per run (~35 ms measured). Here each thread opens one on its first run
    and keeps it, in its own context, for the runs after.
    """

    def __init__(self, threads: int, runtime: Runtime) -> None:
        self._runtime = runtime
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="freshcache-inline")
        self._local = threading.local()
        self._clients: list[SyncClientContext] = []
        self._start_every_thread(threads)

    def _start_every_thread(self, threads: int) -> None:
        """Start the pool's threads now, from this thread. A thread inherits the CPU priority of
        the thread that starts it, and queries, whose threads run at the lowest, hand their lazy
        fetches to this pool: a thread it started then would run every later refresh at it."""
        started = threading.Barrier(threads + 1)
        for _ in range(threads):
            self._pool.submit(started.wait)  # each waits: the next submit starts a new thread
        started.wait()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        return self._pool.submit(self._in_client_context, fn, *args)

    def _in_client_context(self, fn: Callable[..., T], *args: Any) -> T:
        if getattr(self._local, "client", None) is None:
            # Entered for the life of the thread: a worker thread runs its items in one context.
            self._local.client = SyncClientContext().__enter__()
            self._clients.append(self._local.client)
        return fn(self._runtime, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for context in self._clients:
            context.client.__exit__(None, None, None)
