"""The runtime a flow or task resolves at its entry: the scope it runs in, across the threads that
Prefect's task runner and Starlette's thread pool run it on, else the process's own."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner
from starlette.concurrency import run_in_threadpool

from runtime.container import Runtime, build_runtime, entry_runtime, runtime_scope
from runtime.settings import Settings
from tests.reliability_support import PROJECT_DIR


def _runtime(data_dir: Path) -> Runtime:
    return build_runtime(Settings(data_dir=data_dir, catalog_url=f"sqlite:///{data_dir}/c.db"))


@pytest.fixture
def runtimes(tmp_path: Path) -> Iterator[tuple[Runtime, Runtime]]:
    first, second = _runtime(tmp_path / "first"), _runtime(tmp_path / "second")
    yield first, second
    first.close()
    second.close()


@task
def data_dir_of_entry_runtime(index: int) -> str:
    return f"{index} {entry_runtime().settings.data_dir}"


@flow
def data_dirs_from_task_threads(tasks: int) -> list[str]:
    """As flows/data.py runs its refresh tasks: on a ThreadPoolTaskRunner of its own."""
    runner: ThreadPoolTaskRunner[str] = ThreadPoolTaskRunner(max_workers=tasks)
    with runner:
        futures = [runner.submit(data_dir_of_entry_runtime, {"index": i}) for i in range(tasks)]
        return [future.result() for future in futures]


@flow
def data_dirs_from_mapped_tasks(tasks: int) -> list[str]:
    """As flows/schema.py runs its tasks: mapped on the flow's own task runner."""
    return [future.result() for future in data_dir_of_entry_runtime.map(range(tasks))]


@pytest.mark.parametrize("run", [data_dirs_from_task_threads, data_dirs_from_mapped_tasks])
def test_tasks_on_prefects_thread_pools_see_the_scope_of_the_flow_call(
    prefect_server: None, runtimes: tuple[Runtime, Runtime], run: Any
) -> None:
    first, _ = runtimes
    with runtime_scope(first):
        seen = run(4)
    assert seen == [f"{i} {first.settings.data_dir}" for i in range(4)]


def test_starlettes_thread_pool_sees_the_scope(runtimes: tuple[Runtime, Runtime]) -> None:
    first, _ = runtimes

    async def in_threadpool() -> Runtime:
        return await run_in_threadpool(entry_runtime)

    with runtime_scope(first):
        assert anyio.run(in_threadpool) is first


def test_two_scopes_coexist_in_one_process(runtimes: tuple[Runtime, Runtime]) -> None:
    both_inside = threading.Barrier(2)
    seen: dict[str, Runtime] = {}

    def use(name: str, runtime: Runtime) -> None:
        with runtime_scope(runtime):
            both_inside.wait(timeout=30)
            seen[name] = entry_runtime()

    threads = [threading.Thread(target=use, args=pair) for pair in zip("ab", runtimes, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == {"a": runtimes[0], "b": runtimes[1]}


def test_a_nested_scope_ends_with_its_block(runtimes: tuple[Runtime, Runtime]) -> None:
    first, second = runtimes
    with runtime_scope(first):
        with runtime_scope(second):
            assert entry_runtime() is second
        assert entry_runtime() is first


def test_outside_any_scope_the_process_builds_one_runtime_from_the_environment(
    tmp_path: Path,
) -> None:
    """As a deployment's flow-run process does (in a process of its own: the runtime stays)."""
    program = (
        "from runtime.container import entry_runtime\n"
        "runtime = entry_runtime()\n"
        "print(runtime.settings.data_dir, entry_runtime() is runtime)\n"
    )
    env = {**os.environ, "FRESHCACHE_DATA_DIR": str(tmp_path / "data")}
    env.pop("FRESHCACHE_CATALOG_URL", None)
    env.pop("FRESHCACHE_CACHE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == [str(tmp_path / "data"), "True"]
