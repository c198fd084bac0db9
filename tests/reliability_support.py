"""Support for the reliability tests: child processes that stop at a chosen point, invariants.

A child runs the real refresh or cleanup code, built from FRESHCACHE_* variables like any worker.
A profile hook (``sys.setprofile``, and ``threading.setprofile`` for the threads started after)
watches for one function's call or return; at its n-th occurrence the child prints ``PAUSED`` and
sleeps, so the parent can SIGKILL it at exactly that point. Nothing in the code under test is
replaced: the hook only stops the process.

    python -m tests.reliability_support refresh <module:qualname> <call|return> <n> <conn> <s> <t>
    python -m tests.reliability_support cleanup <module:qualname> <call|return> <n>
"""

from __future__ import annotations

import importlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import pyarrow.parquet as pq

from core.cleanup import delete_due_files, sweep_orphans
from runtime.container import Runtime
from runtime.settings import Settings
from storage.naming import is_temporary

PAUSED = "PAUSED"
FINISHED = "FINISHED"
PROJECT_DIR = Path(__file__).resolve().parent.parent


def stress_seconds(default: float = 8) -> float:
    """How long the stress loops run: FRESHCACHE_STRESS_SECONDS (30 in `make stress`)."""
    return float(os.environ.get("FRESHCACHE_STRESS_SECONDS", default))


def runtime_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of a process that builds the same Runtime as `settings` describes."""
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "FRESHCACHE_DATA_DIR": str(settings.data_dir),
        "FRESHCACHE_CATALOG_URL": settings.resolved_catalog_url,
        "FRESHCACHE_CACHE_URL": settings.resolved_cache_url,
        "FRESHCACHE_DELETION_GRACE_SECONDS": str(settings.deletion_grace_seconds),
        "FRESHCACHE_REFRESH_CONCURRENCY": str(settings.refresh_concurrency),
        **extra,
    }
    if settings.s3_endpoint_url:
        env["FRESHCACHE_S3_ENDPOINT_URL"] = settings.s3_endpoint_url
    return env


# -- the child side ---------------------------------------------------------------------------


def _code_of(target: str) -> CodeType:
    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    code: CodeType = obj.__code__
    return code


def pause_at(target: str, event: str, nth: int) -> None:
    """Stop this process at the n-th `event` ("call" or "return") of `target`, in this thread or
    one started after (a streamed write reads its source on a thread of its own)."""
    code = _code_of(target)
    seen = 0

    def profile(frame: FrameType, what: str, _arg: object) -> None:
        nonlocal seen
        if what == event and frame.f_code is code:
            seen += 1
            if seen == nth:
                sys.setprofile(None)
                threading.setprofile(None)
                print(PAUSED, flush=True)
                time.sleep(3600)

    sys.setprofile(profile)
    threading.setprofile(profile)


def child_main(argv: list[str]) -> None:
    action, target, event, nth, *rest = argv
    from runtime.container import build_runtime
    from runtime.settings import load_settings

    runtime = build_runtime(load_settings())  # from FRESHCACHE_* variables, as a worker does
    if action == "refresh":
        from tasks.concurrency import ensure_connection_limit
        from tasks.refresh_table import refresh_table_now

        connection_id, schema_name, table_name = int(rest[0]), rest[1], rest[2]
        ensure_connection_limit(connection_id, runtime.settings.refresh_concurrency)
        pause_at(target, event, int(nth))
        refresh_table_now(runtime, connection_id, schema_name, table_name)
    elif action == "cleanup":
        from core.cleanup import delete_due_files

        pause_at(target, event, int(nth))
        delete_due_files(runtime)
    else:
        raise SystemExit(f"unknown action {action!r}")
    sys.setprofile(None)
    threading.setprofile(None)
    print(FINISHED, flush=True)


# -- the parent side --------------------------------------------------------------------------


def run_and_kill(args: list[str], env: dict[str, str], log: Path, timeout: float = 90) -> int:
    """Run a child until it reports PAUSED, then SIGKILL it; returns its exit status."""
    with log.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability_support", *args],
            env=env,
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert child.stdout is not None
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                ready, _, _ = select.select([child.stdout], [], [], max(remaining, 0))
                line = child.stdout.readline() if ready else ""
                if line.strip() == PAUSED:
                    break
                if not ready or line == "" or line.strip() == FINISHED:
                    output = log.read_text()[-3000:]
                    raise AssertionError(
                        f"child {args} never paused (exit {child.poll()}): {output}"
                    )
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
    return child.returncode


def reset_connection_limit(connection_id: int) -> int:
    """Delete the connection's Prefect limit (and its waiting line); returns the slots it still
    had taken.

    A SIGKILLed fetch keeps its slot until its lease expires (5 minutes); connection ids repeat
    across the tests' fresh catalogs, so a test that kills fetches starts the next one clean.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from orchestration.slots import waiting_line_name
    from tasks.concurrency import connection_limit_name

    name = connection_limit_name(connection_id)
    active = 0
    with get_client(sync_client=True) as client:
        for limit in (name, waiting_line_name(name)):
            try:
                taken = client.read_global_concurrency_limit_by_name(limit).active_slots
            except ObjectNotFound:
                continue
            client.delete_global_concurrency_limit_by_name(limit)
            active += taken if limit == name else 0
    return active


# -- invariants -------------------------------------------------------------------------------


def read_versions(runtime: Runtime, path: str) -> tuple[int, int, int, int]:
    """(min version, max version, row count, sum of ids) of a cache file, read in full."""
    with runtime.storage.filesystem.open(path, "rb") as handle:
        table = pq.read_table(handle)
    versions = table.column("version").to_pylist()
    ids = table.column("id").to_pylist()
    return min(versions), max(versions), table.num_rows, sum(ids)


@dataclass(frozen=True)
class CacheState:
    files: set[str]
    referenced: set[str]
    queued: set[str]
    temporaries: set[str]  # files being written, or abandoned while they were


def cache_state(runtime: Runtime) -> CacheState:
    storage = runtime.storage
    return CacheState(
        files={f.path for f in storage.list_files()},
        referenced={path for s in runtime.catalog.list_snapshots() for path in s.files},
        queued={d.path for d in runtime.catalog.list_deletions()},
        temporaries={p for p in storage.filesystem.find(storage.root) if is_temporary(p)},
    )


def assert_nothing_leaks(state: CacheState) -> None:
    """Every file is live or queued, every live file exists, no live file is queued, and no
    temporary is left."""
    assert state.referenced <= state.files, f"missing live files: {state.referenced - state.files}"
    assert not state.referenced & state.queued, (
        f"live files queued: {state.referenced & state.queued}"
    )
    assert state.files <= state.referenced | state.queued, (
        f"unreferenced, unqueued files: {state.files - state.referenced - state.queued}"
    )
    assert not state.temporaries, f"temporaries left: {state.temporaries}"


if __name__ == "__main__":
    child_main(sys.argv[1:])


def assert_cleanup_leaves_the_live_files(runtime: Runtime) -> str:
    """No queued deletion points at a live file; after an orphan sweep and the due deletions,
    the cache holds its live files and nothing else. Returns what the cleanup did, in words."""
    before = cache_state(runtime)
    assert not before.referenced & before.queued, "a pending deletion points at a live file"
    assert before.referenced <= before.files
    sweep = sweep_orphans(runtime, 0)
    cleaned = delete_due_files(runtime)
    after = cache_state(runtime)
    assert_nothing_leaks(after)
    assert after.files == after.referenced and not after.queued
    assert cleaned.failed == []
    return (
        f"swept {len(sweep.scheduled)} orphans and {len(sweep.temporaries_removed)} abandoned "
        f"temporaries, deleted {len(cleaned.deleted)} files, {len(after.files)} file(s) left"
    )
