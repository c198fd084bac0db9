"""prefect.yaml: `prefect deploy --all` creates every deployment against a real Prefect server,
and a worker of the pool runs them, sending the heartbeats a silent run is detected by."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.responses import DeploymentResponse
from prefect.settings import PREFECT_API_URL

from orchestration.deployments import HEARTBEAT_SECONDS
from runtime.settings import Settings
from tests.process_marks import kill_with_descendants
from tests.test_crashed_runs import heartbeats_of
from tests.test_flow_parameters import unexplained_parameters
from tests.world import remove_deployment

PROJECT = Path(__file__).resolve().parent.parent


RUN_SECONDS = 180


def cli_env() -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "FRESHCACHE_PROJECT_DIR": str(PROJECT),
    }


def prefect_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "prefect"), *args],
        cwd=PROJECT,
        env=cli_env(),
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
    for deployment in deployed:
        heartbeat = deployment.job_variables["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"]
        assert heartbeat == str(HEARTBEAT_SECONDS), deployment.name


def test_a_workers_run_sends_heartbeats(
    deployed: tuple[DeploymentResponse, DeploymentResponse, DeploymentResponse], tmp_path: Path
) -> None:
    """A worker of the pool runs prefect.yaml's deployment, and the run sends heartbeats, which
    the automation of `freshcache crash-detection` tells a dead run from a live one by. Their
    60 s is the job variable checked above: at Prefect's default they would come every 180 s."""
    refresh = deployed[0]
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", "freshcache"],
        cwd=tmp_path,
        env={**cli_env(), "FRESHCACHE_DATA_DIR": str(tmp_path / "data")},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        with get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(refresh.id)  # a schema refresh
            deadline = time.monotonic() + RUN_SECONDS
            while not (state := client.read_flow_run(run.id).state) or not state.is_final():
                assert worker.poll() is None, log.read_text()
                assert time.monotonic() < deadline, f"{state}\n{log.read_text()}"
                time.sleep(0.5)
            assert state.is_completed(), f"{state}\n{log.read_text()}"
            # The server writes events in batches, at least every 5 s.
            heartbeats = heartbeats_of(run.id)
            while not client.request("POST", "/events/filter", json=heartbeats).json()["events"]:
                assert time.monotonic() < deadline, "the worker's run sent no heartbeat"
                time.sleep(0.5)
    finally:
        kill_with_descendants(worker)
