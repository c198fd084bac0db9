"""A flow run that fails for a reason the user can act on says it in one line.

Prefect ends a run that raises in a Failed state whose message is "Flow run encountered an
exception: <type>: <message>", after logging the traceback; a run that returns a Failed state
ends in that state, with its message as is. The causes a user can act on (an invalid request, a
missing connection or table, a failing source or cache storage) end the run so, with the cause
as the message and one log line; any other exception is a bug and keeps Prefect's traceback.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar, cast

from prefect import get_run_logger
from prefect.states import Failed

from catalog import CatalogError
from flows.outcomes import describe
from flows.request import InvalidRefreshRequest
from sources import SourceError
from storage import StorageError

EXPLAINED_FAILURES = (InvalidRefreshRequest, CatalogError, SourceError, StorageError)

P = ParamSpec("P")
R = TypeVar("R")


def one_line(error: BaseException) -> str:
    return " ".join(describe(error).split())


def failing_with_the_cause(fn: Callable[P, R]) -> Callable[P, R]:
    """`fn` as a flow's function: an explained failure ends the run with the cause as the message.

    A caller of the flow still gets the exception raised: Prefect raises a Failed state's data.
    """

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        _without_tracebacks_of_explained_failures()
        try:
            return fn(*args, **kwargs)
        except EXPLAINED_FAILURES as error:
            cause = one_line(error)
            get_run_logger().error(cause)
            # Prefect takes a returned state as the run's final state, not as its result.
            return cast(R, Failed(message=cause, data=error))

    # Prefect reads the parameters from the signature, and would look the names of its string
    # annotations (`from __future__ import annotations`) up in this module: give them resolved.
    run.__signature__ = inspect.signature(fn, eval_str=True)  # type: ignore[attr-defined]
    return run


def _explained_failure_without_traceback(record: logging.LogRecord) -> bool:
    """A log filter: a flow run's record of an explained failure is dropped (the flow logged
    its cause), a task run's keeps its message (naming the failure) without the traceback.

    Prefect logs the traceback of a failed task run, and that of a flow run's failure again
    when the process of a deployment run ends.
    """
    error = record.exc_info[1] if record.exc_info else None
    if not isinstance(error, EXPLAINED_FAILURES):
        return True
    if record.name == "prefect.flow_runs":
        return False
    record.exc_info = record.exc_text = None
    return True


def _without_tracebacks_of_explained_failures() -> None:
    """Filter the run loggers of this process (once)."""
    for name in ("prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if _explained_failure_without_traceback not in logger.filters:
            logger.addFilter(_explained_failure_without_traceback)
