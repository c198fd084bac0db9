"""`freshcache refresh`: an ad hoc refresh from a terminal, with progress and a result table.

With the data directory's stack running, the refresh goes through its webhook, so it runs as
the stack's deployment; otherwise it runs here, recorded in the data directory's Prefect.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.stack import RunningStack, find_running_stack, prefect_of
from catalog import Catalog
from flows.request import RefreshKind, RefreshRequest
from runtime.container import Runtime, build_runtime
from runtime.settings import Settings

POLL_SECONDS = 0.5


class RefreshCommandError(RuntimeError):
    """Why the refresh did not run or failed: one line for the terminal."""


def run_refresh_command(request: RefreshRequest, settings: Settings, *, inline: bool) -> int:
    console = Console()
    data_dir = settings.data_dir.resolve()
    stack = None if inline else find_running_stack(data_dir)
    runtime = build_runtime(settings)
    catalog = runtime.catalog
    try:
        if stack is not None:
            console.print(f"refreshing through the stack at {stack.webhook}")
            result = _watched(
                request, catalog, console, lambda: _through_stack(stack, request, settings)
            )
        else:
            with prefect_of(data_dir):
                result = _watched(request, catalog, console, lambda: _inline(runtime, request))
    except RefreshCommandError as exc:
        console.print(f"[red]freshcache: {exc}[/red]")
        return 1
    finally:
        runtime.close()
    console.print(result_table(result))
    return 1 if result.get("tables_failed") else 0


def _watched(
    request: RefreshRequest,
    catalog: Catalog,
    console: Console,
    run: Callable[[], dict[str, Any]],
) -> dict[str, Any]:
    """Run the refresh in a thread; show its tables' progress from the catalog meanwhile."""
    future: Future[dict[str, Any]] = Future()
    started = catalog.clock()

    def target() -> None:
        try:
            future.set_result(run())
        except BaseException as exc:  # handed to the waiting thread
            future.set_exception(exc)

    threading.Thread(target=target, name="freshcache-refresh", daemon=True).start()
    tables = _tables_to_refresh(request, catalog)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task(_describe(request), total=len(tables) if tables else None)
        while not future.done():
            if tables:
                progress.update(bar, completed=_synced_since(catalog, request, tables, started))
            time.sleep(POLL_SECONDS)
    return future.result()


def _describe(request: RefreshRequest) -> str:
    kind = request.kind()
    if kind is RefreshKind.DATA_TABLE:
        return f"data of {request.schema_name}.{request.table_name}"
    if kind is RefreshKind.DATA_CONNECTION:
        return f"data of connection {request.connection_id}"
    return "schemas" if request.connection_id is None else f"schema of {request.connection_id}"


def _tables_to_refresh(request: RefreshRequest, catalog: Catalog) -> set[tuple[str, str]]:
    """The tables a data refresh will swap in; empty for a schema refresh (no bar to fill)."""
    kind = request.kind()
    if kind is RefreshKind.DATA_TABLE:
        assert request.schema_name is not None and request.table_name is not None
        return {(request.schema_name, request.table_name)}
    if kind is RefreshKind.DATA_CONNECTION:
        assert request.connection_id is not None
        return {
            (t.schema_name, t.table_name)
            for t in catalog.list_tables(request.connection_id)
            if not request.cached_only or t.parquet_path is not None
        }
    return set()


def _synced_since(
    catalog: Catalog, request: RefreshRequest, tables: set[tuple[str, str]], started: datetime
) -> int:
    return sum(
        1
        for t in catalog.list_tables(request.connection_id)
        if (t.schema_name, t.table_name) in tables
        and t.last_sync is not None
        and t.last_sync >= started
    )


def _through_stack(
    stack: RunningStack, request: RefreshRequest, settings: Settings
) -> dict[str, Any]:
    headers = {}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    body = request.model_dump(exclude_defaults=True)
    try:
        with httpx.Client(base_url=stack.webhook, headers=headers, timeout=30) as client:
            response = client.post("/refresh", params={"wait": 0}, json=body)
            if response.status_code != 202:
                return _answer(response)
            status_url = response.json()["status_url"]
            while True:
                time.sleep(POLL_SECONDS)
                status = _answer(client.get(status_url))
                if status["finished"]:
                    if status.get("error"):
                        raise RefreshCommandError(status["error"])
                    return dict(status["result"])
    except httpx.HTTPError as exc:
        raise RefreshCommandError(f"the stack's webhook at {stack.webhook}: {exc}") from exc


def _answer(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RefreshCommandError(_error_of(response))
    return dict(response.json())


def _error_of(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def _inline(runtime: Runtime, request: RefreshRequest) -> dict[str, Any]:
    from flows.refresh import refresh_inline  # imports Prefect: after prefect_of set its URL

    try:
        return refresh_inline(runtime, request)
    except Exception as exc:
        raise RefreshCommandError(str(exc) or type(exc).__name__) from exc


def result_table(result: dict[str, Any]) -> Table:
    """The result of POST /refresh as a table: its numbers, then one row per listed item."""
    table = Table(show_header=True, header_style="bold")
    table.add_column("field")
    table.add_column("value")
    for key, value in result.items():
        if isinstance(value, list):
            table.add_row(key, "\n".join(_item(v) for v in value) or "-")
        else:
            table.add_row(key, str(value))
    return table


def _item(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)
