"""The warm forkserver's set-up (app/forkserver_setup.py), in a fresh process standing in for
the forkserver: its forks (the runs) die with it, and a run's own child processes are left
alone. The runner killed with a run in flight is tests/test_clean_stop.py."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil  # type: ignore[import-untyped]
import pytest

from tests.reliability_support import PROJECT_DIR

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")

# The forkserver forks a run; the run starts a child process with a preexec_fn (which runs
# Python's at-fork hooks in the child) and forks one; both must live and report back.
RUN_WITH_CHILDREN = """
import os, subprocess, sys
import app.forkserver_setup

run = os.fork()
if run == 0:
    started = subprocess.run([sys.executable, "-c", "print('child ran')"], preexec_fn=lambda: None)
    forked = os.fork()
    if forked == 0:
        os._exit(7)
    _, status = os.waitpid(forked, 0)
    os._exit(0 if started.returncode == 0 and os.waitstatus_to_exitcode(status) == 7 else 1)
_, status = os.waitpid(run, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""

# The forkserver forks a run, says its pid and is killed; the run must die with it.
FORKSERVER_KILLED = """
import os, signal, time
import app.forkserver_setup

run = os.fork()
if run == 0:
    time.sleep(60)
    os._exit(0)
print(run, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60
    )


def test_a_runs_own_child_processes_are_left_alone() -> None:
    done = run_script(RUN_WITH_CHILDREN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "child ran" in done.stdout


def test_a_run_dies_with_its_forkserver() -> None:
    done = run_script(FORKSERVER_KILLED)
    assert done.returncode == -signal.SIGKILL, done.stdout + done.stderr
    try:
        run = psutil.Process(int(done.stdout))
    except psutil.NoSuchProcess:
        return  # gone already
    _, alive = psutil.wait_procs([run], timeout=10)
    for process in alive:
        process.kill()
    assert alive == [], "the run outlived its forkserver"
