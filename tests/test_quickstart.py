"""The README's quickstart, end to end: `freshcache up` as a subprocess, then its curl steps.

One `freshcache up` serves the whole module (it takes ~10 s to start); the last test stops it
with SIGTERM and checks that every process it started has exited.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

pytestmark = pytest.mark.timeout(180)

READY_LINE = "freshcache is up"
START_TIMEOUT = 90.0
STOP_SECONDS = 12.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _clean_env(data_dir: Path, prefect_home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FRESHCACHE_") and k not in ("PREFECT_API_URL", "PREFECT_PROFILE")
    }
    env.update(FRESHCACHE_DATA_DIR=str(data_dir), PREFECT_HOME=str(prefect_home))
    return env


def _up_command(port: int, ui_port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "runtime.cli",
        "up",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
    ]


@dataclass
class Stack:
    process: subprocess.Popen[str]
    env: dict[str, str]
    port: int
    ui_port: int
    workdir: Path
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    tree: list[psutil.Process] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return "".join(self.lines)

    def read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith(READY_LINE):
                self.ready.set()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("quickstart")
    env = _clean_env(workdir / "data", workdir / "prefect-home")
    port, ui_port = _free_port(), _free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        _up_command(port, ui_port),
        env=env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    running = Stack(process, env, port, ui_port, workdir)
    threading.Thread(target=running.read_output, daemon=True).start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not running.ready.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                _skip_or_fail(running)
        print(f"\nfreshcache up: ready in {time.monotonic() - started:.1f} s")
        running.tree = psutil.Process(process.pid).children(recursive=True)
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            for child in running.tree:
                if child.is_running():
                    child.kill()


def _skip_or_fail(running: Stack) -> None:
    output = running.output()
    if "the Prefect server" in output and "exited" in output:
        pytest.skip(f"the Prefect server cannot start here:\n{output}")
    pytest.fail(f"freshcache up did not become ready:\n{output}")


def _post(stack: Stack, path: str, body: dict[str, Any], **params: Any) -> httpx.Response:
    return httpx.post(f"{stack.api}{path}", json=body, params=params, timeout=90)


def _get(stack: Stack, path: str) -> httpx.Response:
    return httpx.get(f"{stack.api}{path}", timeout=30)


def _query(stack: Stack, sql: str) -> dict[str, Any]:
    response = _post(stack, "/query", {"sql": sql})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _demo_id(stack: Stack) -> int:
    (connection,) = _get(stack, "/connections").json()
    return int(connection["id"])


def test_banner_names_the_ui_the_api_and_its_docs(stack: Stack) -> None:
    output = stack.output()
    assert f"http://127.0.0.1:{stack.ui_port}" in output
    assert f"{stack.api}/docs" in output
    assert f"PREFECT_API_URL=http://127.0.0.1:{stack.ui_port}/api" in output


def test_health_and_the_registered_demo(stack: Stack) -> None:
    assert _get(stack, "/health").json() == {"status": "ok", "catalog": "ok", "prefect": "ok"}
    (connection,) = _get(stack, "/connections").json()
    assert connection["name"] == "demo"
    assert connection["source_type"] == "duckdb"
    assert connection["table_count"] == 3
    assert connection["cached_table_count"] == 0


def test_schema_refresh(stack: Stack) -> None:
    response = _post(stack, "/refresh", {"connection_id": _demo_id(stack)})
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
        t["table_name"]: t for t in _get(stack, f"/connections/{_demo_id(stack)}/tables").json()
    }
    assert tables["customers"]["synced"] is True
    assert tables["orders"]["synced"] is False
    total = _query(stack, 'SELECT count(*) AS orders FROM "demo"."main"."orders"')
    assert total["rows"] == [[50_000]]


def test_data_refresh_picks_up_new_demo_rows(stack: Stack) -> None:
    added = subprocess.run(
        [sys.executable, "-m", "runtime.demo", "--add-orders", "1000"],
        env=stack.env,
        cwd=stack.workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "orders now has 51000 rows" in added.stdout
    body = {"connection_id": _demo_id(stack), "schema_name": "main", "table_name": "orders"}
    response = _post(stack, "/refresh", {**body, "data": True})
    assert response.status_code == 200, response.text
    assert response.json()["rows_synced"] == 51_000
    total = _query(stack, 'SELECT count(*) AS orders FROM "demo"."main"."orders"')
    assert total["rows"] == [[51_000]]


def test_refresh_without_waiting_returns_202_then_the_result(stack: Stack) -> None:
    response = _post(stack, "/refresh", {"connection_id": _demo_id(stack), "data": True}, wait=0)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status_url"] == f"/refresh/runs/{accepted['flow_run_id']}"
    deadline = time.monotonic() + 60
    while not (status := _get(stack, accepted["status_url"]).json())["finished"]:
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
        _up_command(_free_port(), _free_port()),
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
    env = _clean_env(tmp_path / "data", tmp_path / "prefect-home")
    other = subprocess.run(
        _up_command(stack.port, _free_port()),
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
