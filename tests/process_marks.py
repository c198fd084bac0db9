"""Finding processes by a mark in their environment: it is inherited by every descendant and
kept when one is re-parented to init, where its parent's tree no longer shows it."""

from __future__ import annotations

import contextlib
import os

import psutil  # type: ignore[import-untyped]


def alive(process: psutil.Process) -> bool:
    """Running, and not a zombie waiting for its parent."""
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def marked(variable: str, value: str) -> list[psutil.Process]:
    """Every other live process whose environment has `variable` set to `value`."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):  # gone meanwhile, or another user's
            if process.pid != os.getpid() and process.environ().get(variable) == value:
                found.append(process)
    return [p for p in found if alive(p)]
