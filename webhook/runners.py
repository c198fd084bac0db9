"""Where the webhook runs its inline flow runs: refreshes and the lazy fetches of queries.

`freshcache api` runs them in a child process (flows/inline_process.py), away from the GIL its
queries hold; an app built on a test's runtime runs them on threads of its own process, in
that runtime.
"""

from __future__ import annotations

from collections.abc import Callable

from flows.inline import FlowRunner, InlineRunner
from flows.inline_process import InlineProcess
from query.resolve import FetchTable
from runtime.container import Runtime
from tasks.refresh_table import fetch_for_query

# Inline flow runs at once; more wait for a thread.
INLINE_THREADS = 16
# What the child runs, with the engines Prefect imports on a first run (measured: the first
# refresh of a child that imports them then took ~2 s longer).
CHILD_PRELOAD = (
    "prefect.flow_engine",
    "prefect.task_engine",
    "flows.refresh",
    "tasks.refresh_table",
)

FlowRunnerFactory = Callable[[Runtime], FlowRunner]


def threads_here(runtime: Runtime) -> FlowRunner:
    return InlineRunner(INLINE_THREADS, runtime)


def child_process(runtime: Runtime) -> FlowRunner:
    """A child process on `runtime`'s settings, started now when refreshes run inline (so it
    has imported Prefect before the first one), on the first lazy fetch otherwise."""
    process = InlineProcess(runtime.settings, INLINE_THREADS, CHILD_PRELOAD)
    if runtime.settings.execution == "inline":
        process.start()
    return process


def lazy_fetch(runner: FlowRunner) -> FetchTable:
    """A query's lazy fetch, run by `runner` in its own runtime (on the query's settings)."""

    def fetch(_runtime: Runtime, connection_id: int, schema_name: str, table_name: str) -> None:
        runner.call(fetch_for_query, connection_id, schema_name, table_name)

    return fetch
