"""Serving the `freshcache-refresh` and `freshcache-cleanup` deployments without a worker.

`freshcache up` runs `python -m runtime.deployments` as a child process: a Prefect Runner that
registers both deployments (as prefect.yaml describes them) and runs their flow runs.
"""

from __future__ import annotations

import sys

REFRESH_DEPLOYMENT = "freshcache-refresh"
CLEANUP_DEPLOYMENT = "freshcache-cleanup"
POLL_SECONDS = 1.0


def main() -> int:
    from prefect import serve
    from prefect.deployments.runner import RunnerDeployment
    from prefect.types.entrypoint import EntrypointType

    from flows.cleanup import cleanup
    from flows.refresh import refresh
    from runtime.processes import wait_for_prefect_api
    from runtime.settings import load_settings

    settings = load_settings()
    wait_for_prefect_api()  # started with the server, to import while it boots
    # Module entrypoints (flows.refresh.refresh) load from the installed package, whatever the
    # directory `freshcache up` was started in.
    refresh_deployment = RunnerDeployment.from_flow(
        refresh,
        name=REFRESH_DEPLOYMENT,
        description="Schema or data refresh, with the fields of POST /refresh as parameters.",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # No schedules of its own: leaving the field unset keeps the ones users add (a nightly
    # data refresh) when this re-registers the deployment; an empty list would delete them.
    refresh_deployment.model_fields_set.discard("schedules")
    cleanup_deployment = RunnerDeployment.from_flow(
        cleanup,
        name=CLEANUP_DEPLOYMENT,
        description="Deletes superseded cache files after their grace period; sweeps orphans.",
        interval=settings.cleanup_interval_seconds,
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # Schedules stay active when `freshcache up` stops, so they resume with it.
    serve(
        refresh_deployment,
        cleanup_deployment,
        pause_on_shutdown=False,
        print_starting_message=False,
        query_seconds=POLL_SECONDS,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
