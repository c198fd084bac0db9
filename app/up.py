"""`freshcache up`: a Prefect server with its UI, the served deployments, the webhook, the demo.

Every part runs as a child process in its own process group; Ctrl-C or SIGTERM stops them all.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from app.prefect_server import PREFECT_HOST, api_url, start_prefect_server
from app.preflight import PreflightError, acquire_instance_lock, check_port_free
from app.processes import (
    Child,
    ChildExited,
    http_ok,
    interrupt_on_termination,
    python_module,
    start_child,
    stop_children,
    wait_until,
)
from orchestration.deployments import HEARTBEAT_SECONDS, REFRESH
from runtime.settings import Settings, load_settings

START_TIMEOUT = 120.0
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class Endpoints:
    prefect_api: str
    webhook: str
    local_prefect: bool

    @property
    def prefect_ui(self) -> str:
        return self.prefect_api.removesuffix("/").removesuffix("/api")


def run_up(*, host: str, port: int, ui_port: int) -> int:
    started = time.monotonic()
    settings = load_settings()
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = acquire_instance_lock(data_dir)
    except PreflightError as exc:
        return _fail(str(exc))
    try:
        endpoints = _endpoints(host, port, ui_port)
        check_port_free(host, port, "freshcache webhook API", "--port")
        if endpoints.local_prefect:
            check_port_free(PREFECT_HOST, ui_port, "Prefect server and UI", "--ui-port")
        lock.describe(webhook=endpoints.webhook, prefect_api=endpoints.prefect_api)
        return _run(settings, data_dir, endpoints, host, port, started)
    except PreflightError as exc:
        return _fail(str(exc))
    finally:
        lock.release()


def _endpoints(host: str, port: int, ui_port: int) -> Endpoints:
    webhook = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    configured = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    if configured and http_ok(f"{configured}/health"):
        return Endpoints(prefect_api=configured, webhook=webhook, local_prefect=False)
    if configured:
        print(
            f"freshcache: PREFECT_API_URL={configured} does not answer; "
            "starting a local Prefect server instead",
            flush=True,
        )
    return Endpoints(api_url(ui_port), webhook, local_prefect=True)


def _run(
    settings: Settings,
    data_dir: Path,
    endpoints: Endpoints,
    host: str,
    port: int,
    started: float,
) -> int:
    env = _child_env(data_dir, endpoints)
    logs = data_dir / "logs"
    needs_demo = _migrate_catalog(settings)
    server: list[Child] = []  # stopped last: the others report to it while they stop
    services: list[Child] = []
    helpers: list[Child] = []  # run to completion
    with interrupt_on_termination():
        try:
            # All start at once: the others import their modules while the server boots.
            if endpoints.local_prefect:
                server.append(_start_prefect_server(env, endpoints, logs))
            services.append(
                start_child(
                    "the deployment runner",
                    python_module("app.deployments"),
                    env,
                    logs / "runner.log",
                )
            )
            services.append(
                start_child(
                    "the webhook",
                    python_module("app.cli", "api", "--host", host, "--port", str(port)),
                    env,
                )
            )
            if needs_demo:
                quiet = {**env, "PREFECT_LOGGING_LEVEL": "WARNING"}
                helpers.append(
                    start_child("the demo set-up", python_module("app.demo", "--seed"), quiet)
                )
            _wait_http("the Prefect server", f"{endpoints.prefect_api}/health", services + server)
            _wait_ready(endpoints, services + server, helpers)
            _print_banner(endpoints, data_dir, time.monotonic() - started)
            while True:
                for child in services + server:
                    child.check_running()
                time.sleep(0.5)
        except KeyboardInterrupt:
            print("\nfreshcache: stopping...", flush=True)
            return 0
        except (ChildExited, TimeoutError) as exc:
            return _fail(f"{exc}; stopping")
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
            stop_children(services + helpers, STOP_TIMEOUT)
            stop_children(server, STOP_TIMEOUT)


def _child_env(data_dir: Path, endpoints: Endpoints) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FRESHCACHE_DATA_DIR=str(data_dir),
        FRESHCACHE_EXECUTION="deployment",
        PREFECT_API_URL=endpoints.prefect_api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    if endpoints.local_prefect:
        # The server's SQLite database, profiles and result storage live in the data directory.
        env["PREFECT_HOME"] = str(data_dir / "prefect")
    # Refresh results are files the webhook reads back: one directory every process shares.
    env.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(data_dir / "prefect" / "storage"))
    # A deployment's run that stops responding is marked Crashed after three missed heartbeats.
    env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    # Lazy caching runs tasks outside a flow run; their logs stay local, without a warning each.
    env.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    return env


def _migrate_catalog(settings: Settings) -> bool:
    """Apply migrations once, before the children open the catalog; True when it is empty."""
    from catalog import Catalog

    catalog = Catalog.from_url(settings.resolved_catalog_url)
    try:
        return not catalog.list_connections()
    finally:
        catalog.dispose()


def _start_prefect_server(env: dict[str, str], endpoints: Endpoints, logs: Path) -> Child:
    print(f"freshcache: starting the Prefect server at {endpoints.prefect_ui}...", flush=True)
    port = urlparse(endpoints.prefect_api).port
    assert port is not None
    return start_prefect_server(env, port, logs / "prefect-server.log")


def _wait_http(description: str, url: str, children: list[Child]) -> None:
    wait_until(description, lambda: http_ok(url), children, START_TIMEOUT)


def _wait_ready(endpoints: Endpoints, services: list[Child], helpers: list[Child]) -> None:
    deployment = f"{endpoints.prefect_api}/deployments/name/{REFRESH.full}"
    _wait_http(f"the {REFRESH.deployment} deployment", deployment, services)
    _wait_http("the webhook", f"{endpoints.webhook}/health", services)
    for helper in helpers:
        if helper.process.wait(timeout=START_TIMEOUT) != 0:
            print(f"freshcache: {helper.name} failed (see above); carrying on", flush=True)


def _print_banner(endpoints: Endpoints, data_dir: Path, seconds: float) -> None:
    print(
        f"""
freshcache is up (started in {seconds:.1f} s)
  Prefect UI       {endpoints.prefect_ui}
  webhook API      {endpoints.webhook}   (docs: {endpoints.webhook}/docs)
  data directory   {data_dir}   (logs in {data_dir / "logs"})
  prefect CLI      export PREFECT_API_URL={endpoints.prefect_api}
Press Ctrl-C to stop.""",
        flush=True,
    )


def _fail(message: str) -> int:
    print(f"freshcache: {message}", file=sys.stderr, flush=True)
    return 1
