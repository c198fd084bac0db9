"""Child processes of `freshcache up`: each in its own process group, stopped as a group."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

_PR_SET_PDEATHSIG = 1


class ChildExited(RuntimeError):
    """A child process ended while `freshcache up` needed it."""


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None

    def check_running(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ChildExited(f"{self.name} exited with status {code}{self._log_tail()}")

    def _log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"; the end of {self.log_path}:\n  " + "\n  ".join(tail)


def die_with_parent() -> None:
    """Linux: this process is killed when its parent ends, however it ends (kill -9, OOM killer).

    SIGKILL, not SIGTERM: when `freshcache up` dies, the Prefect server goes at the same moment,
    and the runner's graceful shutdown would wait on the server forever.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start_child(
    name: str, args: Sequence[str], env: Mapping[str, str], log_path: Path | None = None
) -> Child:
    """Start `args` in a new session (Ctrl-C reaches only us; we stop the group)."""
    output: IO[bytes] | None = None
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        output = log_path.open("ab")
    try:
        process = subprocess.Popen(
            list(args),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
    finally:
        if output is not None:
            output.close()
    return Child(name, process, log_path)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def stop_children(children: Sequence[Child], timeout: float) -> None:
    """SIGTERM each child's process group, then SIGKILL what is left after `timeout` seconds."""
    running = [c for c in children if c.process.poll() is None]
    for child in running:
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for child in running:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        # Also the group's other members (the server's workers, flow run subprocesses).
        _signal_group(child, signal.SIGKILL)
        child.process.wait()


def _signal_group(child: Child, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.process.pid, signum)


def wait_until(
    description: str, ready: Callable[[], bool], children: Sequence[Child], timeout: float
) -> None:
    """Poll `ready` until it holds; fail early if a child dies, or after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not ready():
        for child in children:
            child.check_running()
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{description} not ready after {timeout:.0f} s")
        time.sleep(0.2)


def wait_for_prefect_api(timeout: float = 120.0) -> None:
    """In a child started with the Prefect server: wait until PREFECT_API_URL answers."""
    url = os.environ["PREFECT_API_URL"].rstrip("/")
    wait_until("the Prefect API", lambda: http_ok(f"{url}/health"), [], timeout)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def interrupt_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP stop this process as Ctrl-C does: they raise KeyboardInterrupt.

    So `finally` blocks and atexit handlers run, which stop what the process started (Prefect
    stops its temporary server in one); Python's default for SIGTERM ends the process without
    them, leaving such children running.
    """

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def run_stoppable(main: Callable[[], int]) -> int:
    """`main()`, stopped cleanly by SIGINT, SIGTERM or SIGHUP: then 130 (the shell's Ctrl-C)."""
    with interrupt_on_termination():
        try:
            return main()
        except KeyboardInterrupt:
            return 130
