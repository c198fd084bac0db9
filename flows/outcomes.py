"""Collecting mapped task results without letting one failure fail its siblings."""

from __future__ import annotations

from typing import Any

from prefect.futures import PrefectFuture


def outcome(future: PrefectFuture[Any]) -> Any:
    """The task's return value, or the exception it failed with."""
    future.wait()
    state = future.state
    if state.is_completed():
        return state.result()
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:
        return exc
    return RuntimeError(f"task ended in state {state.type.value}")


def describe(error: BaseException) -> str:
    return str(error) or type(error).__name__
