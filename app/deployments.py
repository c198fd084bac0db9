"""Serving freshcache's deployments (refresh, cleanup, freshness) without a worker.

`freshcache up` runs `python -m app.deployments` as a child process: a Prefect Runner that
registers the deployments (as prefect.yaml describes them) and runs their flow runs.
"""

from __future__ import annotations

import sys
import threading
import time

from orchestration.deployments import CLEANUP, FRESHNESS, REFRESH
from runtime.container import Runtime

# How often the runner asks for runs to start: half of it is the mean wait of a POST /refresh in
# deployment mode before its run starts; each ask is one light API call.
POLL_SECONDS = 0.5
REGISTRATION_TIMEOUT = 120.0


def main() -> int:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Interval
    from prefect.settings import get_current_settings
    from prefect.types.entrypoint import EntrypointType

    from app.processes import wait_for_prefect_api
    from app.warm_runs import serve, start_runs_from_a_warm_process
    from core.freshness import table_statuses
    from flows.cleanup import cleanup
    from flows.freshness import freshness
    from flows.refresh import refresh
    from orchestration.crashed_runs import ensure_crash_detection
    from runtime.container import build_runtime
    from runtime.settings import load_settings

    settings = load_settings()
    # This process only registers and serves the deployments: their runs are processes of
    # their own, each with its runtime (runtime/container.py).
    runtime = build_runtime(settings)
    start_runs_from_a_warm_process()  # its imports overlap the server's start
    wait_for_prefect_api()  # started with the server, to import while it boots
    ensure_crash_detection(get_current_settings().flows.heartbeat_frequency)
    # Module entrypoints (flows.refresh.refresh) load from the installed package, whatever the
    # directory `freshcache up` was started in.
    refresh_deployment = RunnerDeployment.from_flow(
        refresh,
        name=REFRESH.deployment,
        description="Schema or data refresh, with the fields of POST /refresh as parameters.",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # No schedules of its own: leaving the field unset keeps the ones users add (a nightly
    # data refresh) when this re-registers the deployment; an empty list would delete them.
    refresh_deployment.model_fields_set.discard("schedules")
    cleanup_deployment = RunnerDeployment.from_flow(
        cleanup,
        name=CLEANUP.deployment,
        description="Deletes superseded cache files after their grace period; sweeps orphans.",
        interval=settings.cleanup_interval_seconds,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    catalog = runtime.catalog
    targets = any(s.policy.max_staleness_seconds for s in table_statuses(catalog, catalog.clock()))
    freshness_deployment = RunnerDeployment.from_flow(
        freshness,
        name=FRESHNESS.deployment,
        description="Refreshes the tables whose max_staleness_seconds falls due, most overdue "
        "first; each run schedules the next. The schedule is a safety net, active only while "
        "some table has a target.",
        schedules=[Interval(settings.freshness_safety_interval_seconds, active=targets)],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    threading.Thread(
        target=_arm_freshness_when_registered,
        args=(runtime,),
        name="arm-freshness",
        daemon=True,
    ).start()
    # Schedules stay active when `freshcache up` stops, so they resume with it.
    serve(
        [
            (refresh_deployment, refresh),
            (cleanup_deployment, cleanup),
            (freshness_deployment, freshness),
        ],
        query_seconds=POLL_SECONDS,
    )
    return 0


def _arm_freshness_when_registered(runtime: Runtime) -> None:
    """Once the freshness deployment exists, schedule the run its targets need: a target that
    fell due while the stack was down is refreshed at once, not at the next safety run."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    from orchestration.freshness_runs import arm_freshness

    deadline = time.monotonic() + REGISTRATION_TIMEOUT
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            try:
                client.read_deployment_by_name(FRESHNESS.full)
                break
            except ObjectNotFound:
                time.sleep(POLL_SECONDS)
    arm_freshness(runtime.catalog, runtime.settings.freshness_lead_seconds)


if __name__ == "__main__":
    from app.processes import run_stoppable

    sys.exit(run_stoppable(main))
