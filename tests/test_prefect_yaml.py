"""prefect.yaml: `prefect deploy --all` creates both deployments against a real Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

PROJECT = Path(__file__).resolve().parent.parent


def prefect_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "FRESHCACHE_PROJECT_DIR": str(PROJECT),
    }
    return subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), *args],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_prefect_deploy_all_creates_refresh_and_cleanup(prefect_server: None) -> None:
    pool = prefect_cli("work-pool", "create", "freshcache", "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    deployed = prefect_cli("--no-prompt", "deploy", "--all")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    with get_client(sync_client=True) as client:
        refresh = client.read_deployment_by_name("refresh/freshcache-refresh")
        cleanup = client.read_deployment_by_name("cleanup/freshcache-cleanup")
    assert refresh.entrypoint == "flows/refresh.py:refresh"
    assert set(refresh.parameter_openapi_schema["properties"]) >= {
        "connection_id",
        "schema_name",
        "table_name",
        "data",
    }
    (schedule,) = cleanup.schedules
    assert schedule.active
    assert schedule.schedule.interval.total_seconds() == 30
    assert refresh.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT)}}
    ]
