"""FRESHCACHE_EXECUTION=deployment: the webhook triggers a served `refresh` deployment."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from orchestration.deployments import REFRESH
from tests.hostile_support import freezable_directory
from tests.http_server import serve
from tests.source_dbs import create_numbered_table
from tests.world import make_world
from webhook.app import create_app

pytestmark = pytest.mark.long_file(55)

SERVE_REFRESH = "from flows.refresh import refresh; refresh.serve(name='freshcache-refresh')"


def wait_for_deployment(timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                client.read_deployment_by_name(REFRESH.full)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)


@pytest.mark.parametrize("catalog_backend", ["sqlite", "postgresql"])
def test_deployment_mode_returns_results_and_202_with_a_status_url(
    prefect_server: None, tmp_path: Path, catalog_backend: str
) -> None:
    with (
        freezable_directory(tmp_path / "cache") as freeze,
        make_world(catalog_backend, "duckdb", tmp_path, execution="deployment") as world,
    ):
        create_numbered_table(world.source, "orders", 12)
        conn_id = world.register()
        settings = world.runtime.settings
        env = {
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
            "FRESHCACHE_DATA_DIR": str(settings.data_dir),
            "FRESHCACHE_CATALOG_URL": settings.resolved_catalog_url,
            "FRESHCACHE_CACHE_URL": settings.resolved_cache_url,
        }
        worker = subprocess.Popen([sys.executable, "-c", SERVE_REFRESH], env=env, cwd=os.getcwd())
        try:
            wait_for_deployment()
            with serve(create_app(world.runtime)) as client:
                missing = client.post("/refresh", json={"connection_id": 999})
                assert missing.status_code == 404

                schema = client.post("/refresh?wait=90", json={"connection_id": conn_id})
                assert schema.status_code == 200, schema.text
                assert schema.json()["tables_added"] == 1

                body = {
                    "connection_id": conn_id,
                    "schema_name": "main",
                    "table_name": "orders",
                    "data": True,
                }
                accepted = client.post("/refresh?wait=0", json=body)
                assert accepted.status_code == 202, accepted.text
                run = accepted.json()
                assert set(run) == {"flow_run_id", "state", "status_url"}
                deadline = time.monotonic() + 90
                while True:
                    status = client.get(run["status_url"]).json()
                    if status["finished"] or time.monotonic() > deadline:
                        break
                    time.sleep(0.5)
                assert status["state"] == "Completed", status
                assert status["result"]["rows_synced"] == 12
                assert world.catalog.get_table(conn_id, "main", "orders").parquet_path

                # A failure answers as in inline mode: the connection, the table, the cause.
                cause = freeze(True)
                failed = client.post("/refresh?wait=90", json=body)
                assert failed.status_code == 500, failed.text
                assert failed.json()["error"].endswith(
                    "cannot create the cache file of connection 'src', table main.orders: " + cause
                ), failed.text
                assert str(tmp_path / "cache") not in failed.text
                freeze(False)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
