"""Cleanup of many due files on disk: `delete_due_files` against files that really exist."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta
from pathlib import Path

from bench.report import Figure, seconds
from bench.sizes import Sizes
from bench.world import World

TARGET_SECONDS = 10.0
UNKNOWN_CONNECTION = 999_999  # files of a connection the catalog does not have: all deletable


def cleanup_figure(world: World, sizes: Sizes) -> Figure:
    from core.cleanup import delete_due_files

    times = []
    for _ in range(sizes.repeat):
        paths = _make_due_files(world, sizes.cleanup_files)
        started = time.perf_counter()
        result = delete_due_files(world.runtime)
        times.append(time.perf_counter() - started)
        if len(result.deleted) != len(paths) or any(Path(p).exists() for p in paths):
            raise RuntimeError(f"cleanup deleted {len(result.deleted)} of {len(paths)} files")
    elapsed = statistics.median(times)
    return Figure(
        f"cleanup of {sizes.cleanup_files:,} due files on disk (`delete_due_files`)",
        seconds(elapsed),
        "—",
        "—",
        f"≤ {TARGET_SECONDS:.0f} s",
        elapsed <= TARGET_SECONDS,
    )


def _make_due_files(world: World, files: int) -> list[str]:
    storage, catalog = world.runtime.storage, world.runtime.catalog
    paths = [
        storage.new_version_path(UNKNOWN_CONNECTION, "public", f"table_{n % 100}")
        for n in range(files)
    ]
    for path in paths:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"PAR1")
    catalog.schedule_deletions(paths, catalog.clock() - timedelta(seconds=1))
    return paths
