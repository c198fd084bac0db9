"""Running one measurement in a fresh process, which reports its own peak RSS."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from app.processes import http_ok

ROOT = Path(__file__).resolve().parents[1]
READY_LINE = "freshcache is up"  # app/up.py's banner
# The bench's own quiet (no log lines on the table's stdout); the servers it starts run as a
# user's do, with Prefect's logging, run logs sent to the API included.
QUIET_LOGGING = {
    "PREFECT_LOGGING_LEVEL": "ERROR",
    "PREFECT_SERVER_LOGGING_LEVEL": "ERROR",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
}
STACK_START_SECONDS = 180
# A server has started once its processes use less than this share of a core, SETTLE_SECONDS
# long (its first answer comes before its children are done importing).
SETTLED_CPU_SHARE = 0.05
SETTLE_SECONDS = 1.0
SETTLE_TIMEOUT = 60.0


class MeasurementFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float  # the process's maximum resident set size
    file_mb: float


def run_fresh(kind: str, **params: Any) -> Run:
    """`bench.worker` runs the measurement `kind` in a new interpreter.

    The child reads its peak RSS from VmHWM: the parent's getrusage(RUSAGE_CHILDREN) or wait4()
    would report at least the parent's own size, which Linux carries across fork and exec.
    """
    command = [sys.executable, "-m", "bench.worker", kind, json.dumps(params)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        tail = result.stderr.strip().splitlines()[-5:]
        raise MeasurementFailed(f"{kind} failed: " + " / ".join(tail))
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return Run(report["seconds"], report["peak_kb"] / 1024, report["file_bytes"] / 1e6)


def median_run(kind: str, repeat: int, **params: Any) -> Run:
    """The median time, peak and size of `repeat` fresh runs."""
    return median_of([run_fresh(kind, **params) for _ in range(repeat)])


def median_of(runs: list[Run]) -> Run:
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.peak_mb for r in runs),
        statistics.median(r.file_mb for r in runs),
    )


def timed_run(action: Callable[[], object]) -> Callable[[], Run]:
    """A measure of `action`'s time in this process."""

    def measure() -> Run:
        started = time.perf_counter()
        action()
        return Run(time.perf_counter() - started, 0.0, 0.0)

    return measure


def in_turns(repeat: int, *measures: Callable[[], Run]) -> list[Run]:
    """The median of `repeat` runs of each measure, taken in turns (a b a b ...) after one
    untimed turn of each: the machine's drift, the page cache and what only a first run pays
    then weigh on every measure alike."""
    for measure in measures:
        measure()
    runs: list[list[Run]] = [[] for _ in measures]
    for _ in range(repeat):
        for taken, measure in zip(runs, measures, strict=True):
            taken.append(measure())
    return [median_of(taken) for taken in runs]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, server: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Poll `url` until it answers 200; fail at once if `server` exits, or after `timeout`."""
    deadline = time.monotonic() + timeout
    while not http_ok(url):
        if server.poll() is not None:
            raise RuntimeError(f"{what} exited before serving")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")
        time.sleep(0.1)


@contextmanager
def serve_api(**settings: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`freshcache api` in a child process on a free port, with FRESHCACHE_<name> `settings`;
    yields its base URL and the process once it has started (`wait_settled`: /health answers
    while its inline process still imports Prefect, for seconds of a core). Its output
    (Prefect's run logs) goes to a temporary file, shown when it fails to start."""
    port = free_port()
    command = [sys.executable, "-m", "app.cli", "api", "--port", str(port)]
    env = {**user_environment(), **{f"FRESHCACHE_{k.upper()}": v for k, v in settings.items()}}
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        url = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_healthy(f"{url}/health", server, "freshcache api", 60)
                wait_settled(server)
            except RuntimeError as exc:
                log.seek(0)
                raise RuntimeError(
                    f"{exc}: {log.read()[-2000:].decode(errors='replace')}"
                ) from None
            yield url, server
        finally:
            stop_process(server, 30)


def wait_settled(process: subprocess.Popen[bytes]) -> None:
    """Wait until `process` and its children have finished starting: their CPU use drops to
    SETTLED_CPU_SHARE of a core."""

    def cpu_seconds() -> float:
        total = 0.0
        root = psutil.Process(process.pid)
        for member in [root, *root.children(recursive=True)]:
            try:
                times = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    deadline = time.monotonic() + SETTLE_TIMEOUT
    before = cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(SETTLE_SECONDS)
        after = cpu_seconds()
        if after - before < SETTLED_CPU_SHARE * SETTLE_SECONDS:
            return
        before = after
    raise MeasurementFailed(f"the server still busy after {SETTLE_TIMEOUT:.0f} s")


def user_environment() -> dict[str, str]:
    """This environment (the bench's catalog, cache and Prefect API) without the bench's quiet."""
    return {k: v for k, v in os.environ.items() if k not in QUIET_LOGGING}


@contextmanager
def serve_stack(workdir: Path) -> Iterator[str]:
    """`freshcache up` (deployment mode: the runner serving the deployments, the webhook) on
    free ports, on the bench's catalog, cache and Prefect server; yields the webhook's base URL
    once its banner is out, and stops the stack (SIGTERM: it stops its children)."""
    port = free_port()
    command = [sys.executable, "-m", "app.cli", "up", "--port", str(port)]
    log = workdir / "up.log"
    with log.open("wb") as output:
        stack = subprocess.Popen(
            [*command, "--ui-port", str(free_port())],
            cwd=workdir,
            env=user_environment(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + STACK_START_SECONDS
        while READY_LINE not in log.read_text():
            if stack.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"freshcache up did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(stack, 60)


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
