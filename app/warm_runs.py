"""Flow runs of the served deployments start from a warm process, not a fresh interpreter.

Prefect's runner starts each run of a served flow with multiprocessing's `spawn`: a new
interpreter that imports Prefect and the flow's modules before the run can begin, ~4 s of a
`POST /refresh` in deployment mode on a 2-core machine. Here the runner's process starts
multiprocessing's forkserver once, which imports those modules once; each run is a fork of it,
ready at once. The run itself is Prefect's, unchanged: the same pickled call, environment,
heartbeats and control channel, and the process the runner tracks, cancels and kills is the
run's own (a child of the forkserver, in the runner's process group). The forkserver and its
runs end with the runner, however the runner ends (app/forkserver_setup.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.forkserver
import signal
from collections.abc import Sequence
from types import ModuleType
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import TerminationSignal

# What a run imports before its flow starts: the engine and the flows the runner serves, after
# the set-up that ties the forkserver and its runs to the runner.
PRELOAD = [
    "app.forkserver_setup",
    "prefect.flow_engine",
    "flows.refresh",
    "flows.cleanup",
    "flows.freshness",
]


class _SpawnAsForkserver:
    """The `multiprocessing` module as Prefect's flow engine sees it: asked for the spawn
    context, it gets the forkserver's; everything else is the module itself."""

    def __init__(self, real: ModuleType, forkserver: multiprocessing.context.BaseContext) -> None:
        self._real = real
        self._forkserver = forkserver

    def get_context(self, method: str | None = None) -> multiprocessing.context.BaseContext:
        if method == "spawn":
            return self._forkserver
        return self._real.get_context(method)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def start_runs_from_a_warm_process() -> None:
    """From now on, the flow runs this process's runner starts are forks of a warm forkserver.

    Call it in the runner's process before it serves: the forkserver starts here and imports
    PRELOAD while the deployments register.
    """
    import prefect.flow_engine

    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(PRELOAD)
    multiprocessing.forkserver.ensure_running()
    # Prefect's run_flow_in_subprocess hard-codes the spawn context; this is the one name it
    # looks it up by. A Prefect that stops doing so fails tests/test_quickstart.py.
    prefect.flow_engine.multiprocessing = _SpawnAsForkserver(  # type: ignore[assignment]
        multiprocessing, forkserver
    )


def serve(served: Sequence[tuple[RunnerDeployment, Flow[..., Any]]], query_seconds: float) -> None:
    """Register the deployments and run their flow runs until stopped, as prefect.serve does,
    each run a fork of the warm process (start_runs_from_a_warm_process first).

    prefect.serve registers deployments without their flow objects, so its runner starts each
    run as `python -m prefect.engine`, a new interpreter that cannot be forked from a warm one.
    Registering each flow with its deployment makes the runner run the flow object itself.
    """
    from prefect.runner import Runner

    runner = Runner(pause_on_shutdown=False, query_seconds=query_seconds)
    for deployment, flow in served:
        deployment_id = runner.add_deployment(deployment)
        assert isinstance(deployment_id, UUID)  # called from sync code: not a coroutine
        runner._deployment_registry.register_flow(deployment_id, flow)
    # Every stop takes the runner's SIGTERM path, which cancels the runs in flight. Interrupted
    # (KeyboardInterrupt), it would wait for them: it waits for a run's process in a thread.
    for stop in (signal.SIGINT, signal.SIGHUP):
        signal.signal(stop, runner.handle_sigterm)
    with contextlib.suppress(KeyboardInterrupt, TerminationSignal):  # a stop, as serve takes it
        asyncio.run(runner.start())
