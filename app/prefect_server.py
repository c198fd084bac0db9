"""A Prefect server of our own, as a child process: `freshcache up` starts one unless
PREFECT_API_URL answers, and so does `freshcache api` when PREFECT_API_URL is not set."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from app.processes import Child, http_ok, python_module, start_child

PREFECT_HOST = "127.0.0.1"
# Task runs reach the server as events, and its recorder writes each event in a transaction of
# its own by default: ~15 ms of server CPU a task run on 2 cores, more than a tiny table's fetch
# (measured with `python -m bench --only "tiny tables"`: 200 tables 7.8 s, batched 4.7 s). In
# batches, flushed at least every second, a task run's state reaches the UI up to 1 s later.
TASK_RUN_RECORDING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
}


def start_prefect_server(env: dict[str, str], port: int, log_path: Path) -> Child:
    """`prefect server start` on PREFECT_HOST:port; its database lives under env's PREFECT_HOME."""
    return start_child(
        "the Prefect server",
        python_module("prefect", "server", "start", "--host", PREFECT_HOST, "--port", str(port)),
        {
            **env,
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # Run logs go out on the API's websocket too, so that `prefect deployment run
            # --watch` shows them: why a run failed, not only that it did.
            "PREFECT_SERVER_LOGS_STREAM_PUBLISHING_ENABLED": "true",
            "PREFECT_SERVER_LOGS_STREAM_OUT_ENABLED": "true",
            **TASK_RUN_RECORDING,
        },
        log_path,
    )


def api_url(port: int) -> str:
    return f"http://{PREFECT_HOST}:{port}/api"


class LocalPrefect:
    """A Prefect server this process started, watched until its API first answers."""

    def __init__(self, data_dir: Path) -> None:
        port = _free_port()
        self.api_url = api_url(port)
        env = {**os.environ, "PREFECT_HOME": str(data_dir / "prefect")}
        self.child = start_prefect_server(env, port, data_dir / "logs" / "prefect-server.log")
        self._ready = threading.Event()
        threading.Thread(target=self._watch, name="prefect-server-watch", daemon=True).start()

    def starting(self) -> bool:
        """True until the API first answers, as long as the server is running."""
        return not self._ready.is_set() and self.child.process.poll() is None

    def _watch(self) -> None:
        while self.child.process.poll() is None:
            if http_ok(f"{self.api_url}/health"):
                self._ready.set()
                return
            time.sleep(0.2)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((PREFECT_HOST, 0))
        return int(probe.getsockname()[1])
