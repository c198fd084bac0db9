"""Finding the running stack of a data directory, so every `freshcache` command uses its Prefect.

`freshcache up` holds DATA_DIR/up.lock while it runs and writes its endpoints in it; a command
run beside it reads them. With no stack running, a command that needs Prefect starts a server of
its own on the data directory's Prefect database (never Prefect's default in ~/.prefect) and
stops it when it ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.prefect_server import LocalPrefect
from app.preflight import LOCK_FILE
from app.processes import stop_children

PREFECT_START_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class RunningStack:
    pid: int
    webhook: str
    prefect_api: str


def find_running_stack(data_dir: Path) -> RunningStack | None:
    """The `freshcache up` running on `data_dir`, or None when its lock is free."""
    path = data_dir / LOCK_FILE
    if not path.exists():
        return None
    with path.open() as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _described(handle.read())
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


def _described(text: str) -> RunningStack | None:
    try:
        info = json.loads(text)
        return RunningStack(int(info["pid"]), str(info["webhook"]), str(info["prefect_api"]))
    except (ValueError, KeyError, TypeError):
        return None  # still starting: it writes its endpoints once they are known


@contextmanager
def prefect_of(data_dir: Path) -> Iterator[str]:
    """Point this process at the stack's Prefect API (or a server of its own); yields its URL.

    Before Prefect is first imported: it reads PREFECT_API_URL from the environment then.
    An exported PREFECT_API_URL wins, as it does for the `prefect` CLI.
    """
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    stack = find_running_stack(data_dir)
    if stack is not None:
        os.environ["PREFECT_API_URL"] = stack.prefect_api
        yield stack.prefect_api
        return
    local = LocalPrefect(data_dir)
    try:
        print(f"freshcache: no stack running; starting a Prefect server at {local.api_url}")
        _wait_started(local)
        os.environ["PREFECT_API_URL"] = local.api_url
        yield local.api_url
    finally:
        stop_children([local.child], STOP_TIMEOUT)


def _wait_started(local: LocalPrefect) -> None:
    deadline = time.monotonic() + PREFECT_START_TIMEOUT
    while local.starting():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the Prefect server at {local.api_url} did not answer")
        time.sleep(0.2)
    local.child.check_running()
