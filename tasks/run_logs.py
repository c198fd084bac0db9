"""A task run of many (a `refresh-table` run) that completes leaves no log line of its own.

Prefect's task engine logs "Finished in state Completed()" at the end of every task run, to the
console and to the API. A connection refresh runs a task per table: 200 tables gave 200 such
lines in the flow run's log, saying what the task runs' states say already, and cost each table
~1 ms of console rendering under the log handler's lock, which the refresh threads queued for,
and a log record the Prefect server writes (measured with `python -m bench --only "tiny
tables"`: +10.9 ms a table added with the lines, +8.3 ms without). A failed or retried task
run's lines, and whatever else a task run logs, are kept.
"""

from __future__ import annotations

import logging

TASK_RUN_LOGGER = "prefect.task_runs"
COMPLETED = "Finished in state Completed("


class _CompletionLines(logging.Filter):
    """Drops the completion line of the runs of the task named `task_name`."""

    def __init__(self, task_name: str) -> None:
        super().__init__()
        self.task_name = task_name

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            getattr(record, "task_name", None) == self.task_name
            and isinstance(record.msg, str)
            and record.msg.startswith(COMPLETED)
        )


def without_completion_lines(task_name: str) -> None:
    """From now on, runs of the task `task_name` in this process end without their line."""
    logger = logging.getLogger(TASK_RUN_LOGGER)
    if not any(
        isinstance(f, _CompletionLines) and f.task_name == task_name for f in logger.filters
    ):
        logger.addFilter(_CompletionLines(task_name))
