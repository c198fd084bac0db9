"""Serving the webhook with uvicorn, after processing due deletions once.

Without PREFECT_API_URL, `freshcache api` starts a Prefect server of its own (its database in
the data directory) and stops it when it stops; /health says "starting" until it answers.
"""

from __future__ import annotations

import contextlib
import os

import uvicorn

from app.prefect_server import LocalPrefect
from app.processes import stop_children
from app.stack import find_running_stack
from runtime.container import Runtime, build_runtime
from runtime.settings import load_settings

STOP_TIMEOUT = 10.0


async def process_due_deletions_at_start(runtime: Runtime) -> None:
    """Deletions live in the catalog, so the ones that fell due while we were down run now."""
    from starlette.concurrency import run_in_threadpool

    from core.cleanup import delete_due_files

    result = await run_in_threadpool(delete_due_files, runtime)
    print(
        f"freshcache: startup cleanup deleted {len(result.deleted)} files, "
        f"{len(result.failed)} failed",
        flush=True,
    )


def serve_api(host: str, port: int) -> None:
    local = None
    settings = load_settings()
    data_dir = settings.data_dir.resolve()
    stack = None if os.environ.get("PREFECT_API_URL") else find_running_stack(data_dir)
    if stack is not None:
        os.environ["PREFECT_API_URL"] = stack.prefect_api
    elif not os.environ.get("PREFECT_API_URL"):
        local = LocalPrefect(data_dir)
        # Before Prefect is first imported: it reads its settings from the environment then.
        os.environ["PREFECT_API_URL"] = local.api_url
        print(f"freshcache: no PREFECT_API_URL; starting a Prefect server at {local.api_url}")
    try:
        from webhook.app import create_app
        from webhook.runners import child_process

        runtime = build_runtime(settings)
        app = create_app(
            runtime,
            on_startup=process_due_deletions_at_start,
            prefect_starting=local.starting if local is not None else None,
            flow_runner=child_process,
        )
        # uvicorn shuts down gracefully on SIGINT or SIGTERM, then raises the signal again (our
        # handler turns SIGTERM into KeyboardInterrupt): a clean stop.
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        if local is not None:
            stop_children([local.child], STOP_TIMEOUT)
