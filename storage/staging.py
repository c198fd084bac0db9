"""Local files written under a temporary name and renamed when complete.

A writer holds a shared flock(2) on the file's directory from before it names its temporary
until the temporary has its final name. The sweep removes a directory's temporaries only under
an exclusive lock on it: then no writer is at work there, however long a live one has stalled,
and the temporaries left are abandoned (the kernel drops a dead process's locks). The lock is on
the directory, not on the temporary, because a writer may replace the temporary: DuckDB's
``COPY ... TO`` writes a file of its own and renames it over its target.
"""

from __future__ import annotations

import fcntl
import os
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

from storage.errors import storage_errors
from storage.naming import is_temporary, temporary_name


@contextmanager
def staged_local_file(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``, for the caller to create and fill; renamed to
    ``path`` (synced) when the block succeeds, removed when it fails."""
    directory = os.path.dirname(path)
    with storage_errors("create", path):
        os.makedirs(directory, exist_ok=True)
        lock = _locked_directory(directory, fcntl.LOCK_SH)
    temporary = temporary_name(path)
    try:
        yield temporary
        with storage_errors("finish writing", path):
            _sync(temporary)
            os.rename(temporary, path)
            os.fsync(lock)  # makes the rename durable
    except BaseException:
        # Never created, or it cannot be removed now (a read-only file system): then it is
        # abandoned, and the sweep removes it. Either way the write's own failure is raised.
        with suppress(OSError):
            os.remove(temporary)
        raise
    finally:
        os.close(lock)  # only now that the temporary is gone: renamed or removed


def _locked_directory(directory: str, operation: int) -> int:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(descriptor, operation)
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def _sync(path: str) -> None:
    """fsync ``path``, whoever wrote it through whatever handle."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_abandoned_temporaries(root: str, cutoff: datetime) -> list[str]:
    """Remove the temporaries under ``root`` last modified at or before ``cutoff`` whose
    directory no writer holds; return their paths, sorted."""
    removed: list[str] = []
    for directory, names in _temporaries(root).items():
        with storage_errors("remove abandoned temporaries in", directory):
            removed += _remove_abandoned(directory, names, cutoff)
    return sorted(removed)


def _temporaries(root: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    with storage_errors("list", root):
        for directory, _subdirectories, names in os.walk(root, onerror=_raise):
            found[directory] += [name for name in names if is_temporary(name)]
    return {directory: names for directory, names in found.items() if names}


def _raise(error: OSError) -> None:
    raise error


def _remove_abandoned(directory: str, names: list[str], cutoff: datetime) -> list[str]:
    try:
        lock = _locked_directory(directory, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return []  # a writer is at work here: its temporaries are not abandoned
    removed: list[str] = []
    try:
        for name in names:
            path = os.path.join(directory, name)
            try:
                modified = datetime.fromtimestamp(os.stat(path).st_mtime, tz=UTC)
                if modified <= cutoff:
                    os.remove(path)
                    removed.append(path)
            except FileNotFoundError:
                continue  # its writer renamed or removed it before we took the lock
    finally:
        os.close(lock)
    return removed
