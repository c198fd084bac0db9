"""A Prefect server for the bench, in a child process, on a PostgreSQL database of its own.

Prefect's SQLite backend serialises writes: with four refresh tasks running, the concurrency-slot
calls of `connection_slots` wait up to ~2 s each behind the task-run writes (measured: 8 tiny
tables 8.7 s in a flow against 1.5 s in a plain loop). The bench measures the production set-up,
a server on PostgreSQL; `--prefect-db sqlite` measures the default one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from app.prefect_server import TASK_RUN_RECORDING
from bench.data import Postgres
from bench.process import free_port, stop_process, wait_healthy

STARTUP_SECONDS = 120


@contextmanager
def prefect_server(pg: Postgres, home: Path, backend: str) -> Iterator[str]:
    """Start `prefect server start`; yields its API URL and stops it (and drops its database)."""
    with ExitStack() as stack:
        if backend == "postgres":
            database = stack.enter_context(pg.database("prefect"))
            url = pg.url(database, driver="postgresql+asyncpg")
        else:
            url = f"sqlite+aiosqlite:///{home / 'prefect.db'}"
        port = free_port()
        env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_DATABASE_CONNECTION_URL": url,
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            **TASK_RUN_RECORDING,  # as `freshcache up` starts its server
        }
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        log = stack.enter_context((home / "server.log").open("wb"))
        server = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        api = f"http://127.0.0.1:{port}/api"
        try:
            try:
                wait_healthy(f"{api}/health", server, "the Prefect server", STARTUP_SECONDS)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}: {(home / 'server.log').read_text()[-2000:]}") from None
            yield api
        finally:
            stop_process(server, 60)
