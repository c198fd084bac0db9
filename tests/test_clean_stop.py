"""A stopped process leaves nothing running: every freshcache command, stopped by SIGTERM, by
SIGINT or ending on its own, takes its whole process tree with it (Prefect's temporary server,
flow-run processes), and so does the test suite itself.

Each command runs as a subprocess with a mark in its environment. Its tree is captured (psutil,
children recursive) just before it is stopped; afterwards neither a process of that tree nor any
process carrying the mark (a child re-parented to PID 1 keeps its environment) may be running.
The signal goes to the command's own process, as `kill <pid>` would send it.
`freshcache up` stopped by SIGTERM is tests/test_quickstart.py::test_sigterm_stops_every_child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from tests.process_marks import alive, marked
from tests.reliability_support import PROJECT_DIR, runtime_env
from tests.source_dbs import PostgresSource
from tests.world import World, make_world

pytestmark = [pytest.mark.timeout(300), pytest.mark.long_file(200)]

MARK = "FRESHCACHE_TEST_PROCESS_MARK"
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0
WAYS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Started:
    """A command started as a subprocess, its output in a log file."""

    label: str
    process: subprocess.Popen[bytes]
    log: Path
    mark: str
    seen: dict[int, psutil.Process] = field(default_factory=dict)
    command_lines: dict[int, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def observe(self) -> None:
        """Remember the process and all its descendants as they are now."""
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(self.process.pid)
            for member in [root, *root.children(recursive=True)]:
                self.seen.setdefault(member.pid, member)
                with contextlib.suppress(psutil.Error):
                    # The latest: a child seen between its fork and its exec shows the parent's;
                    # an exited one (a zombie) shows none, and keeps the line it had.
                    if line := " ".join(member.cmdline()[1:4]):
                        self.command_lines[member.pid] = line

    def helpers(self) -> list[str]:
        """The command lines of every descendant seen so far."""
        return [line for pid, line in self.command_lines.items() if pid != self.process.pid]

    def _watch(self) -> None:
        while self.process.poll() is None:
            self.observe()
            time.sleep(0.05)


def start(label: str, args: list[str], env: dict[str, str], directory: Path) -> Started:
    """`args` in `directory`, which also gets its output as <label>.log."""
    mark = uuid.uuid4().hex
    log = directory / f"{label}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            args,
            env={**env, MARK: mark},
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    started = Started(label, process, log, mark)
    # Every descendant is seen, even a short-lived one of a command that ends on its own.
    threading.Thread(target=started._watch, daemon=True).start()
    return started


def freshcache(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def leftovers(started: Started) -> list[str]:
    """What still runs of the command's tree once it exited; each is killed."""
    psutil.wait_procs([p for p in started.seen.values() if alive(p)], timeout=15)
    left = {p.pid: p for p in [*started.seen.values(), *marked(MARK, started.mark)] if alive(p)}
    described = []
    for process in left.values():
        with contextlib.suppress(psutil.Error):
            described.append(f"{process.pid} {' '.join(process.cmdline()[:5])}")
            process.kill()
    return described


def stop(started: Started, signum: signal.Signals) -> int:
    """Capture the tree, send `signum` to the command's process, wait until it exits."""
    started.observe()  # the tree at this moment, whatever the watcher last saw
    started.process.send_signal(signum)
    try:
        return started.process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        started.process.kill()
        started.process.wait()
        raise AssertionError(
            f"{started.label} did not stop within {STOP_TIMEOUT:.0f} s:\n{started.output()}"
        ) from None


def wait_until(started: Started, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not ready():
        assert started.process.poll() is None, f"{started.label} exited:\n{started.output()}"
        assert time.monotonic() < deadline, f"{started.label}: {what} not ready\n{started.output()}"
        time.sleep(0.2)
    started.observe()


def check_stopped(started: Started, code: int, expected_code: int) -> list[str]:
    """Problems: a wrong exit status, processes left running."""
    problems = [f"{started.label}: {p} still running" for p in leftovers(started)]
    if code != expected_code:
        problems.append(f"{started.label}: exit status {code}, not {expected_code}")
    return [f"{problem}\n{started.output()}" for problem in problems]


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    """No Prefect server configured: the commands start Prefect's temporary one when needed."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FRESHCACHE_") and k not in ("PREFECT_API_URL", "PREFECT_PROFILE")
    }
    (tmp_path / "prefect-home").mkdir()
    env.update(
        FRESHCACHE_DATA_DIR=str(tmp_path / "data"),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        # The temporary server may take longer than its default 20 s on a loaded machine.
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="150",
    )
    return env


def test_api_with_prefects_temporary_server_leaves_nothing_running(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    """The case of the issue: the Prefect server started for `freshcache api` without
    PREFECT_API_URL outlived it after SIGTERM."""
    running = {}
    for way in WAYS:
        port = free_port()
        env = _own_dirs(clean_env, tmp_path / way)
        running[way] = (
            start(f"api-{way}", freshcache("api", "--port", str(port)), env, tmp_path),
            port,
        )
    problems = []
    try:
        for api, port in running.values():
            # Without PREFECT_API_URL, `freshcache api` starts a Prefect server; a refresh runs
            # a flow.
            wait_until(api, lambda port=port: _refreshes(port), "POST /refresh")
            assert any("prefect server" in helper for helper in api.helpers()), api.helpers()
        for way, (api, _) in running.items():
            problems += check_stopped(api, stop(api, WAYS[way]), 0)
    finally:
        for api, _ in running.values():
            _kill_what_is_left(api)
    assert problems == []


def test_the_inline_process_leaves_when_the_api_is_killed(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    """A SIGKILL leaves `freshcache api` no time to stop the child running its inline flows: the
    child sees its socket close and exits on its own. (The Prefect server the api started is
    left to the test: nothing can stop it after a SIGKILL.)"""
    port = free_port()
    env = _own_dirs(clean_env, tmp_path / "killed")
    api = start("api-killed", freshcache("api", "--port", str(port)), env, tmp_path)
    try:
        wait_until(api, lambda: _refreshes(port), "POST /refresh")
        inline = [
            process
            for pid, process in api.seen.items()
            if "flows.inline_process" in api.command_lines.get(pid, "")
        ]
        assert len(inline) == 1, api.helpers()
        api.process.kill()
        api.process.wait()
        _, alive = psutil.wait_procs(inline, timeout=15)
        assert alive == [], f"the inline process outlived the killed api:\n{api.output()}"
    finally:
        _kill_what_is_left(api)


def _kill_what_is_left(started: Started) -> None:
    """After a failed assertion: the test fails, and leaves nothing for the next ones."""
    for member in started.seen.values():
        with contextlib.suppress(psutil.Error):
            member.kill()


def _refreshes(port: int) -> bool:
    try:
        return (
            httpx.post(f"http://127.0.0.1:{port}/refresh", json={}, timeout=150).status_code == 200
        )
    except httpx.HTTPError:
        return False


def test_up_stopped_by_sigint_leaves_nothing_running(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    args = freshcache("up", "--port", str(free_port()), "--ui-port", str(free_port()))
    up = start("up", args, clean_env, tmp_path)
    wait_until(up, lambda: "freshcache is up" in up.output(), "the stack")
    assert len(up.helpers()) >= 3, up.helpers()  # the Prefect server, the runner, the webhook
    assert check_stopped(up, stop(up, signal.SIGINT), 0) == []


def test_cleanup_and_migrate_leave_nothing_running(
    clean_env: dict[str, str], tmp_path: Path
) -> None:
    """`freshcache cleanup` ending on its own or stopped while its temporary server starts;
    `freshcache migrate` ending on its own."""
    commands = {
        label: start(label, freshcache(command), _own_dirs(clean_env, tmp_path / label), tmp_path)
        for label, command in (
            ("cleanup", "cleanup"),
            ("migrate", "migrate"),
            ("cleanup-SIGTERM", "cleanup"),
            ("cleanup-SIGINT", "cleanup"),
        )
    }
    problems = []
    for way in WAYS:
        cleanup = commands[f"cleanup-{way}"]
        wait_until(cleanup, lambda cleanup=cleanup: bool(cleanup.helpers()), "its temporary server")
        problems += check_stopped(cleanup, stop(cleanup, WAYS[way]), 130)
    for label in ("cleanup", "migrate"):
        command = commands[label]
        problems += check_stopped(command, command.process.wait(timeout=START_TIMEOUT), 0)
    cleanup_helpers = commands["cleanup"].helpers()
    # Its own server on the data directory's database, not Prefect's ephemeral one in ~/.prefect.
    assert any("prefect server" in line for line in cleanup_helpers), cleanup_helpers
    assert problems == []


def _own_dirs(env: dict[str, str], directory: Path) -> dict[str, str]:
    """`env` with a data directory (catalog, cache) and a Prefect home (the temporary server's
    database) of its own under `directory`, for commands that run side by side."""
    (directory / "prefect-home").mkdir(parents=True)
    return {
        **env,
        "FRESHCACHE_DATA_DIR": str(directory / "data"),
        "PREFECT_HOME": str(directory / "prefect-home"),
    }


@pytest.fixture
def slow_world(prefect_server: None, tmp_path: Path) -> Iterator[tuple[World, int]]:
    """A connection whose table `slow` takes a minute to read."""
    from tasks.schema import refresh_connection_schema

    with make_world("sqlite", "postgres", tmp_path) as world:
        assert isinstance(world.source, PostgresSource)
        world.source.execute(
            "CREATE VIEW slow AS SELECT g.i AS id FROM generate_series(1, 3) AS g(i) "
            "CROSS JOIN pg_sleep(60) AS s"
        )
        conn_id = world.register()
        refresh_connection_schema(world.runtime, conn_id)
        yield world, conn_id


# SIGKILL: nothing can run in the runner; its flow run, forked from the runner's forkserver,
# must go all the same (as when `freshcache up` is killed, and takes its runner with it).
RUNNER_STOPS = {"SIGTERM": 0, "SIGINT": 0, "SIGKILL": -signal.SIGKILL}


@pytest.mark.parametrize("way", RUNNER_STOPS)
def test_deployment_runner_with_a_flow_run_in_flight_leaves_nothing_running(
    slow_world: tuple[World, int], tmp_path: Path, way: str
) -> None:
    from prefect.client.orchestration import get_client

    from tests.test_webhook_deployment import wait_for_deployment

    world, conn_id = slow_world
    env = {**runtime_env(world.runtime.settings), "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    runner = start("runner", [sys.executable, "-m", "app.deployments"], env, tmp_path)
    try:
        wait_for_deployment(timeout=START_TIMEOUT)
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name("refresh/freshcache-refresh")
            run = client.create_flow_run_from_deployment(
                deployment.id,
                parameters={
                    "connection_id": conn_id,
                    "schema_name": "public",
                    "table_name": "slow",
                    "data": True,
                },
            )

            def running() -> bool:
                state = client.read_flow_run(run.id).state
                return state is not None and state.is_running()

            # Its process (forked from the runner's warm forkserver) is reading the slow table.
            wait_until(runner, running, "the flow run")
        code = stop(runner, signal.Signals[way])
        problems = check_stopped(runner, code, RUNNER_STOPS[way])
        assert problems == [], "\n".join(problems)
    finally:
        if runner.process.poll() is None:
            runner.process.kill()
            runner.process.wait()
        leftovers(runner)
        remove_the_runners_deployments()


def remove_the_runners_deployments() -> None:
    """The deployments the runner created stay on the session's Prefect server otherwise."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from orchestration.deployments import CLEANUP, FRESHNESS, REFRESH
    from tests.world import remove_deployment

    with get_client(sync_client=True) as client:
        for name in (REFRESH, CLEANUP, FRESHNESS):
            try:
                remove_deployment(client, client.read_deployment_by_name(name.full).id)
            except ObjectNotFound:
                continue


WAITING_TEST = """
import os, time
from pathlib import Path

def test_waits(prefect_server, s3_endpoint_url):
    Path(os.environ["READY_FILE"]).write_text("ready")
    time.sleep(600)
"""


def test_the_test_suite_stopped_leaves_nothing_running(tmp_path: Path) -> None:
    """A run holding the session's Prefect test server and moto server, stopped by SIGTERM
    (one process) or by SIGINT (two xdist workers); a normal end is checked by every run of
    the suite (tests/conftest.py::no_process_outlives_the_session)."""
    (tmp_path / "test_waiting.py").write_text(WAITING_TEST)
    sessions = {}
    for way, workers in (("SIGTERM", []), ("SIGINT", ["-n", "2"])):
        ready = tmp_path / f"ready-{way}"
        args = [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(PROJECT_DIR / "pyproject.toml"),
            "-p",
            "tests.conftest",  # the suite's fixtures, for a test file outside the suite
            "-q",
            str(tmp_path / "test_waiting.py"),
            *workers,
        ]
        env = {**os.environ, "READY_FILE": str(ready), "PYTHONPATH": str(PROJECT_DIR)}
        sessions[way] = (start(f"pytest-{way}", args, env, tmp_path), ready)
    problems = []
    for session, ready in sessions.values():
        wait_until(session, ready.exists, "the waiting test")
        assert any("uvicorn" in helper for helper in session.helpers()), session.helpers()
    for way, (session, _) in sessions.items():
        # pytest's status for an interrupted run
        problems += check_stopped(session, stop(session, WAYS[way]), 2)
    assert problems == []
