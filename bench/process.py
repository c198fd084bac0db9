"""Running one measurement in a fresh process, which reports its own peak RSS."""

from __future__ import annotations

import json
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.processes import http_ok

ROOT = Path(__file__).resolve().parents[1]


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
    runs = [run_fresh(kind, **params) for _ in range(repeat)]
    return Run(
        statistics.median(r.seconds for r in runs),
        statistics.median(r.peak_mb for r in runs),
        statistics.median(r.file_mb for r in runs),
    )


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
