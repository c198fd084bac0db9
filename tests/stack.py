"""`freshcache up` as a user starts it: a subprocess on free ports, with its own data directory.

A stack that does not come up fails the test that needs it, with its output: never a skip.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from tests.process_marks import kill_with_descendants

READY_LINE = "freshcache is up"
# Longer than `freshcache up`'s own limit (app/up.py), so that up says which part did not start.
START_TIMEOUT = 150.0
LOG_TAIL_LINES = 40


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def clean_env(data_dir: Path, prefect_home: Path, **extra: str) -> dict[str, str]:
    """This environment without freshcache or Prefect settings, plus a data dir and `extra`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FRESHCACHE_") and k not in ("PREFECT_API_URL", "PREFECT_PROFILE")
    }
    env.update(FRESHCACHE_DATA_DIR=str(data_dir), PREFECT_HOME=str(prefect_home), **extra)
    return env


def up_command(port: int, ui_port: int) -> list[str]:
    ports = ["--port", str(port), "--ui-port", str(ui_port)]
    return [sys.executable, "-m", "app.cli", "up", *ports]


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

    @property
    def prefect_api(self) -> str:
        return f"http://127.0.0.1:{self.ui_port}/api"

    def output(self) -> str:
        return "".join(self.lines)

    def diagnosis(self) -> str:
        """Its output, the processes still running and the end of each log of its children."""
        parts = [self.output()]
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    parts.append(f"running: {child.status()} {' '.join(child.cmdline()[:7])}\n")
        for log in sorted((self.workdir / "data" / "logs").glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            parts.append(f"--- {log.name} (last {len(tail)} lines) ---\n" + "\n".join(tail) + "\n")
        return "".join(parts)

    def read_output(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.startswith(READY_LINE):
                self.ready.set()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(f"{self.api}{path}", timeout=30, **kwargs)

    def post(self, path: str, body: Any, **params: Any) -> httpx.Response:
        return httpx.post(f"{self.api}{path}", json=body, params=params, timeout=90)

    def put(self, path: str, body: Any) -> httpx.Response:
        return httpx.put(f"{self.api}{path}", json=body, timeout=30)

    def prefect(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the stack's Prefect REST API; the decoded JSON answer.

        A loaded Prefect server on SQLite answers 503 while its database is busy: asked again.
        """
        deadline = time.monotonic() + 30
        while True:
            response = httpx.request(method, f"{self.prefect_api}{path}", json=body, timeout=30)
            if response.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert response.is_success, (method, path, response.status_code, response.text)
        return response.json() if response.content else None


@contextmanager
def running_stack(workdir: Path, **env: str) -> Iterator[Stack]:
    """Start `freshcache up` in `workdir` and wait for its banner; kill what is left afterwards."""
    full_env = clean_env(workdir / "data", workdir / "prefect-home", **env)
    port, ui_port = free_port(), free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        up_command(port, ui_port),
        env=full_env,
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = Stack(process, full_env, port, ui_port, workdir)
    threading.Thread(target=stack.read_output, daemon=True).start()
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not stack.ready.wait(0.2):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"freshcache up did not become ready:\n{stack.diagnosis()}")
        print(f"\nfreshcache up: ready in {time.monotonic() - started:.1f} s")
        stack.tree = psutil.Process(process.pid).children(recursive=True)
        yield stack
    finally:
        kill_with_descendants(process, stack.tree)  # with the flow runs started since
