"""Collecting mapped task results without letting one failure fail its siblings."""

from __future__ import annotations

from typing import Any

from prefect.futures import PrefectFuture
from prefect.results import ResultRecord


def outcome(future: PrefectFuture[Any]) -> Any:
    """The task's return value, or the exception it failed with."""
    future.wait()
    state = future.state
    if state.is_completed():
        # A result kept in memory (persist_result=False) is read here: `state.result()` would
        # hand it to Prefect's event-loop thread and back, ~1.5 ms of the flow's thread per
        # task run, while the runs of the other tables wait for the interpreter.
        if isinstance(state.data, ResultRecord):
            return state.data.result
        return state.result()
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:
        return exc
    return RuntimeError(f"task ended in state {state.type.value}")


def describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
