"""The one DuckDB database that every query of a process runs in, locked down, and a parser.

The database is in memory, with a memory limit that all queries share, a spill directory and
a time limit. It may read the cache root and nothing else (no other file, no network, no
extension), and its configuration is locked: a query cannot undo any of it. Each query runs on
a cursor of its own.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from query.names import quote_literal
from storage import CacheStorage

_LOCKED: dict[str, str | bool | int] = {
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
    "python_enable_replacements": False,  # no scans of Python variables by name
}


@dataclass(frozen=True)
class DatabaseLimits:
    memory_mb: int
    spill_mb: int
    timeout_seconds: float
    spill_directory: Path


def open_database(limits: DatabaseLimits, storage: CacheStorage) -> duckdb.DuckDBPyConnection:
    """The shared database: reads only under the cache root, configuration locked.

    Its threads (DuckDB starts them here) run at a lower CPU priority than the rest of the
    process: when queries take every core, refreshes and /health still get theirs.
    """
    before = _threads()
    con = duckdb.connect(
        ":memory:",
        config={
            **_LOCKED,
            "memory_limit": f"{limits.memory_mb}MB",
            "temp_directory": str(limits.spill_directory),
            "max_temp_directory_size": f"{limits.spill_mb}MB",
            # Each query's caller works on it too (DuckDB's default, external_threads = 1): a
            # caller kept out spins, taking the GIL each turn (measured: a core per waiting
            # query). The callers are the webhook's query threads, as low in priority as these.
            # DuckDB's own stop for the longest a query may take; shorter limits interrupt.
            "max_execution_time": str(max(1, round(limits.timeout_seconds * 1000))),
        },
    )
    lower_priority(_threads() - before)

    def set_up() -> None:
        storage.register_with_duckdb(con)
        con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ values come back in UTC
        con.execute("SET parquet_metadata_cache = true")  # queries read the same files again
        con.execute(f"SET allowed_directories = [{quote_literal(storage.root + '/')}]")

    return _locked_down(con, set_up)


def open_parser() -> duckdb.DuckDBPyConnection:
    """A database of its own for json_serialize_sql, which reads no data: a parse never queues
    behind the query database's busy threads."""
    return _locked_down(duckdb.connect(":memory:", config={**_LOCKED, "threads": 1}))


def _locked_down(
    con: duckdb.DuckDBPyConnection, set_up: Callable[[], None] = lambda: None
) -> duckdb.DuckDBPyConnection:
    """`con` after `set_up`, then with external access off and its configuration locked;
    closed when any of it fails."""
    try:
        set_up()
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


# Added to the process's niceness for every thread working on queries, up to 19. Not +10: a
# thread at +10 still weighs a tenth of a normal one, and twenty busy query threads outweighed
# the one thread of a refresh and the Prefect server it waits on (measured: a small refresh 4x
# slower under query load). At +19 they weigh 1.5% each. Not Linux's idle class either, which
# would stop queries altogether while anything else keeps the CPU busy.
QUERY_NICENESS = 19


def _threads() -> set[int]:
    """The ids of this process's threads (Linux; elsewhere none are known)."""
    try:
        return {int(tid) for tid in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def lower_priority(threads: set[int]) -> None:
    """Run `threads` (ids of this process's) at QUERY_NICENESS more than the process."""
    niceness = min(19, os.getpriority(os.PRIO_PROCESS, 0) + QUERY_NICENESS)
    for tid in threads:
        with contextlib.suppress(OSError):  # gone already, or not allowed
            os.setpriority(os.PRIO_PROCESS, tid, niceness)


def lower_this_threads_priority() -> None:
    """Run the calling thread at the queries' priority from now on (no way back unprivileged)."""
    lower_priority({threading.get_native_id()})
