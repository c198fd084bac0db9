"""Serving the webhook with uvicorn, after processing due deletions once."""

from __future__ import annotations

import uvicorn

from runtime.container import get_runtime


async def process_due_deletions_at_start() -> None:
    """Deletions live in the catalog, so the ones that fell due while we were down run now."""
    from starlette.concurrency import run_in_threadpool

    from tasks.cleanup import delete_due_files

    result = await run_in_threadpool(delete_due_files)
    print(
        f"freshcache: startup cleanup deleted {len(result.deleted)} files, "
        f"{len(result.failed)} failed",
        flush=True,
    )


def serve_api(host: str, port: int) -> None:
    from webhook.app import create_app

    get_runtime()
    app = create_app(on_startup=process_due_deletions_at_start)
    uvicorn.run(app, host=host, port=port, log_level="warning")
