"""The processes tests start: finding them by a mark in their environment (inherited by every
descendant and kept when one is re-parented to init, where its parent's tree no longer shows
it), and killing one with its descendants."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Sequence
from typing import Any

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


def kill_with_descendants(
    process: subprocess.Popen[Any], known: Sequence[psutil.Process] = ()
) -> None:
    """Kill `process`, its descendants now and the `known` ones (taken earlier: a descendant
    re-parented since is no longer in its tree)."""
    tree = list(known)
    if process.poll() is None:
        with contextlib.suppress(psutil.Error):
            tree += psutil.Process(process.pid).children(recursive=True)
        process.kill()
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):  # it went with its parent
            child.kill()
    process.wait()
