"""The README's quickstart, end to end: `freshcache up` as a subprocess, then its curl steps.

One `freshcache up` serves the whole module (it takes ~10 s to start); the last test stops it
with SIGTERM and checks that every process it started has exited.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from tests.stack import Stack, clean_env, free_port, running_stack, up_command

pytestmark = [pytest.mark.timeout(180), pytest.mark.long_file(130)]

STOP_SECONDS = 12.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("quickstart")) as running:
        yield running


def _query(stack: Stack, sql: str) -> dict[str, Any]:
    response = stack.post("/query", {"sql": sql})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _demo_id(stack: Stack) -> int:
    (connection,) = stack.get("/connections").json()
    return int(connection["id"])


def test_banner_names_the_ui_the_api_and_its_docs(stack: Stack) -> None:
    output = stack.output()
    assert f"http://127.0.0.1:{stack.ui_port}" in output
    assert f"{stack.api}/docs" in output
    assert f"PREFECT_API_URL=http://127.0.0.1:{stack.ui_port}/api" in output


def test_health_and_the_registered_demo(stack: Stack) -> None:
    assert stack.get("/health").json() == {
        "status": "ok",
        "catalog": "ok",
        "prefect": "ok",
        "scheduler": "ok",
    }
    (connection,) = stack.get("/connections").json()
    assert connection["name"] == "demo"
    assert connection["source_type"] == "duckdb"
    assert connection["table_count"] == 3
    assert connection["cached_table_count"] == 0


def test_schema_refresh(stack: Stack) -> None:
    response = stack.post("/refresh", {"connection_id": _demo_id(stack)})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["connections_refreshed"] == 1
    assert result["tables_discovered"] == 3
    assert (result["tables_added"], result["tables_removed"], result["tables_modified"]) == (
        0,
        0,
        0,
    )


def test_a_query_caches_the_table(stack: Stack) -> None:
    result = _query(
        stack,
        'SELECT country, count(*) AS customers FROM "demo"."main"."customers" '
        "GROUP BY country ORDER BY customers DESC, country LIMIT 3",
    )
    assert result["columns"] == ["country", "customers"]
    assert result["row_count"] == 3
    assert result["rows"][0] == ["France", 1249]
    tables = {
        t["table_name"]: t for t in stack.get(f"/connections/{_demo_id(stack)}/tables").json()
    }
    assert tables["customers"]["synced"] is True
    assert tables["orders"]["synced"] is False
    total = _query(stack, 'SELECT count(*) AS orders FROM "demo"."main"."orders"')
    assert total["rows"] == [[50_000]]


def test_data_refresh_picks_up_new_demo_rows(stack: Stack) -> None:
    added = subprocess.run(
        [sys.executable, "-m", "app.demo", "--add-orders", "1000"],
        env=stack.env,
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "orders now has 51000 rows" in added.stdout
    body = {"connection_id": _demo_id(stack), "schema_name": "main", "table_name": "orders"}
    response = stack.post("/refresh", {**body, "data": True})
    assert response.status_code == 200, response.text
    assert response.json()["rows_synced"] == 51_000
    total = _query(stack, 'SELECT count(*) AS orders FROM "demo"."main"."orders"')
    assert total["rows"] == [[51_000]]


def _with_command(processes: list[psutil.Process], part: str) -> list[psutil.Process]:
    found = []
    for process in processes:
        with contextlib.suppress(psutil.Error):  # it may end meanwhile
            if part in " ".join(process.cmdline()):
                found.append(process)
    return found


def test_a_deployment_run_is_a_fork_of_the_warm_process(stack: Stack) -> None:
    """A run of the refresh deployment does not start a new interpreter (`python -m
    prefect.engine`, ~4 s of imports): it is forked from the runner's warm forkserver."""
    (runner,) = _with_command(stack.tree, "app.deployments")
    (forkserver,) = _with_command(runner.children(), "multiprocessing.forkserver")
    body = {"connection_id": _demo_id(stack), "schema_name": "main", "table_name": "orders"}
    refresh = ThreadPoolExecutor(1).submit(stack.post, "/refresh", {**body, "data": True})
    forked: set[int] = set()
    engines: list[str] = []
    while not refresh.done():
        forked.update(p.pid for p in forkserver.children())
        engines += [
            " ".join(p.cmdline()) for p in _with_command(runner.children(), "-m prefect.engine")
        ]
        time.sleep(0.02)
    assert refresh.result().status_code == 200, refresh.result().text
    assert forked, "no run process was forked from the warm forkserver"
    assert engines == []


def test_deployment_runs_are_watched_for_missed_heartbeats(stack: Stack) -> None:
    """`freshcache up` makes its runs send a heartbeat every 60 s and creates the automation
    that marks a run Crashed after three of them went missing (it acting on a silent run:
    tests/test_schedules.py)."""
    from orchestration.crashed_runs import AUTOMATION_NAME

    found = stack.prefect(
        "POST", "/automations/filter", {"automations": {"name": {"any_": [AUTOMATION_NAME]}}}
    )
    assert [a["trigger"]["within"] for a in found] == [180.0], found


def test_refresh_without_waiting_returns_202_then_the_result(stack: Stack) -> None:
    response = stack.post("/refresh", {"connection_id": _demo_id(stack), "data": True}, wait=0)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status_url"] == f"/refresh/runs/{accepted['flow_run_id']}"
    deadline = time.monotonic() + 60
    while not (status := stack.get(accepted["status_url"]).json())["finished"]:
        assert time.monotonic() < deadline, status
        time.sleep(0.5)
    assert status["state"] == "Completed", status
    result = status["result"]
    assert (result["tables_refreshed"], result["tables_failed"]) == (3, 0)
    assert result["total_rows"] == 500 + 10_000 + 51_000


README = Path(__file__).resolve().parent.parent / "README.md"
CURL = re.compile(r"^curl -s '?localhost:8000(?P<path>[^' ]*)'?(?: --json '(?P<body>.*)')?")


def _readme_quickstart_requests() -> list[tuple[str, str | None, str | None]]:
    """(path, JSON body or None, documented output) of each curl line of the README quickstart."""
    text = README.read_text()
    section = text[text.index("## Quickstart") : text.index("## Configuration")]
    requests: list[tuple[str, str | None, str | None]] = []
    lines = section.splitlines()
    for number, line in enumerate(lines):
        match = CURL.match(line)
        if match is None or "<" in match["path"] or "runs/" in match["path"]:
            continue
        following = lines[number + 1] if number + 1 < len(lines) else ""
        documented = following[2:] if following.startswith("# {") else None
        requests.append((match["path"], match["body"], documented))
    return requests


def test_every_curl_of_the_readme_quickstart_answers_as_documented(stack: Stack) -> None:
    requests = _readme_quickstart_requests()
    assert len(requests) >= 8
    for path, body, documented in requests:
        url = f"{stack.api}{path}"
        if body is None:
            response = httpx.get(url, timeout=90)
        else:
            response = httpx.post(url, content=body, timeout=90, headers=JSON)
        assert response.status_code in (200, 202), (path, body, response.text)
        if documented is not None and "…" not in documented:
            assert response.json().keys() == json.loads(documented).keys(), (path, body)


JSON = {"content-type": "application/json"}


def test_a_second_instance_on_the_same_data_dir_says_so(stack: Stack) -> None:
    second = subprocess.run(
        up_command(free_port(), free_port()),
        env=stack.env,
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    assert "freshcache is already running" in second.stderr
    assert str(stack.process.pid) in second.stderr


def test_a_port_in_use_is_named_before_anything_starts(stack: Stack, tmp_path: Path) -> None:
    env = clean_env(tmp_path / "data", tmp_path / "prefect-home")
    other = subprocess.run(
        up_command(stack.port, free_port()),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert other.returncode == 1
    assert f"port {stack.port} on 127.0.0.1" in other.stderr
    assert "--port" in other.stderr
    assert not (tmp_path / "data" / "prefect").exists()


def freshcache(stack: Stack, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A `freshcache` command in the stack's directory, as a user runs it: no PREFECT_API_URL."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=stack.env,
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def refreshes_of(stack: Stack, deployment: str) -> set[str]:
    runs = stack.prefect(
        "POST",
        "/flow_runs/filter",
        {"deployments": {"name": {"any_": [deployment]}}, "limit": 200},
    )
    return {run["id"] for run in runs}


def test_freshcache_refresh_goes_through_the_running_stack(stack: Stack) -> None:
    before = refreshes_of(stack, "freshcache-refresh")
    done = freshcache(
        stack, "refresh", "-c", "1", "--schema", "main", "--table", "products", "--data"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refreshing through the stack at" in done.stdout
    assert re.search(r"rows_synced\s*│\s*\d+", done.stdout), done.stdout
    assert "starting a Prefect server" not in done.stdout
    assert len(refreshes_of(stack, "freshcache-refresh") - before) == 1


def test_freshcache_refresh_explains_a_request_that_names_nothing(stack: Stack) -> None:
    done = freshcache(stack, "refresh", "--table", "products")
    assert done.returncode == 2
    assert "table_name requires schema_name" in done.stderr
    missing = freshcache(
        stack, "refresh", "-c", "1", "--schema", "main", "--table", "nope", "--data"
    )
    assert missing.returncode == 1
    assert "nope" in missing.stdout and "Traceback" not in missing.stdout + missing.stderr


@pytest.mark.parametrize(
    ("parameters", "cause"),
    [
        (["schema_name=main"], "schema_name requires connection_id"),
        (
            ["connection_id=1", "schema_name=main", "table_name=nope", "data=true"],
            "table 'main'.'nope' not found in connection 1",
        ),
    ],
    ids=["invalid-request", "missing-table"],
)
def test_prefect_deployment_run_watch_shows_why_a_run_failed(
    stack: Stack, parameters: list[str], cause: str
) -> None:
    """The README's `prefect deployment run … --watch`, for a refresh that fails."""
    watched = subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), "deployment", "run"]
        + ["refresh/freshcache-refresh", "--watch"]
        + [arg for parameter in parameters for arg in ("-p", parameter)],
        env={**stack.env, "PREFECT_API_URL": stack.prefect_api, "COLUMNS": "200"},
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = watched.stdout + watched.stderr
    assert watched.returncode == 1, output
    assert "Flow run finished in state 'Failed'" in output, output
    assert cause in output, output
    assert "Traceback" not in output, output


def test_freshcache_cleanup_uses_the_running_stacks_prefect(stack: Stack) -> None:
    done = freshcache(stack, "cleanup")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting a Prefect server" not in done.stdout
    runs = stack.prefect(
        "POST", "/flow_runs/filter", {"flow_runs": {"name": {"any_": ["cleanup"]}}}
    )
    assert any(run["deployment_id"] is None for run in runs), "the CLI's run is not in the stack"


def test_sigterm_stops_every_child(stack: Stack) -> None:
    names = [" ".join(p.cmdline()[1:4]) for p in stack.tree if p.is_running()]
    assert len(stack.tree) >= 3, names
    started = time.monotonic()
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=STOP_SECONDS) == 0
    _, alive = psutil.wait_procs(stack.tree, timeout=2)
    print(f"freshcache up: stopped in {time.monotonic() - started:.1f} s")
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], names
    assert "stopping" in stack.output()


def test_freshcache_refresh_without_a_stack_runs_here_and_leaves_nothing(stack: Stack) -> None:
    """After the stack stopped: a Prefect server of the data directory's own, then nothing."""
    assert stack.process.poll() is not None, "runs after test_sigterm_stops_every_child"
    command = [sys.executable, "-m", "app.cli", "refresh", "-c", "1", "--data"]
    process = subprocess.Popen(
        command, env=stack.env, cwd=stack.workdir, stdout=subprocess.PIPE, text=True
    )
    tree: set[psutil.Process] = set()
    while process.poll() is None:
        try:
            tree |= set(psutil.Process(process.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.2)
    output = process.stdout.read() if process.stdout else ""
    assert process.returncode == 0, output
    assert "starting a Prefect server" in output
    assert re.search(r"tables_refreshed\s*│\s*3", output), output
    _, alive = psutil.wait_procs(list(tree), timeout=5)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    # The run is in the data directory's own Prefect database, not in ~/.prefect.
    assert (stack.workdir / "data" / "prefect" / "prefect.db").exists()
