"""prefect.yaml: `prefect deploy --all` creates both deployments against a real Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.responses import DeploymentResponse
from prefect.settings import PREFECT_API_URL

from runtime.settings import Settings
from tests.test_flow_parameters import unexplained_parameters
from tests.world import remove_deployment

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


@pytest.fixture
def deployed(
    prefect_server: None,
) -> Iterator[tuple[DeploymentResponse, DeploymentResponse, DeploymentResponse]]:
    """`prefect deploy --all`; removed afterwards, since the test server runs no scheduler."""
    pool = prefect_cli("work-pool", "create", "freshcache", "--type", "process", "--overwrite")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    result = prefect_cli("--no-prompt", "deploy", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    with get_client(sync_client=True) as client:
        refresh = client.read_deployment_by_name("refresh/freshcache-refresh")
        cleanup = client.read_deployment_by_name("cleanup/freshcache-cleanup")
        freshness = client.read_deployment_by_name("freshness/freshcache-freshness")
        yield refresh, cleanup, freshness
        for deployment in (refresh, cleanup, freshness):
            remove_deployment(client, deployment.id)


def test_prefect_deploy_all_creates_every_deployment(
    deployed: tuple[DeploymentResponse, DeploymentResponse, DeploymentResponse],
) -> None:
    refresh, cleanup, freshness = deployed
    assert refresh.entrypoint == "flows/refresh.py:refresh"
    assert set(refresh.parameter_openapi_schema["properties"]) >= {
        "connection_id",
        "schema_name",
        "table_name",
        "data",
    }
    for deployment in (refresh, cleanup):
        assert deployment.description, deployment.name
        assert unexplained_parameters(deployment.parameter_openapi_schema) == [], deployment.name
    (schedule,) = cleanup.schedules
    assert schedule.active
    default_interval = Settings.model_fields["cleanup_interval_seconds"].default
    assert schedule.schedule.interval.total_seconds() == default_interval
    assert refresh.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(PROJECT)}}
    ]
    assert freshness.entrypoint == "flows/freshness.py:freshness"
    (safety,) = freshness.schedules
    default_safety = Settings.model_fields["freshness_safety_interval_seconds"].default
    assert safety.schedule.interval.total_seconds() == default_safety
