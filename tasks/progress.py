"""A table fetch's progress (core/progress.py) as a Prefect progress artifact of the run that
fetches it; outside a Prefect run (a plain call) nothing is reported."""

from __future__ import annotations

import logging
from typing import cast
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext

from core.progress import Publish

logger = logging.getLogger(__name__)


class ProgressArtifact:
    """A progress artifact of the current Prefect run, created with its first value.

    A failed report stops the reports and leaves the fetch alone: progress is not worth
    failing a fetch for.
    """

    def __init__(self) -> None:
        self._id: UUID | None = None
        self._failed = False

    def __call__(self, percent: float, description: str) -> None:
        if self._failed:
            return
        try:
            if self._id is None:
                created = create_progress_artifact(percent, description=description)
                self._id = cast(UUID, created)  # sync here: a UUID
            else:
                update_progress_artifact(self._id, percent, description=description)
        except Exception as error:
            logger.warning("progress no longer reported (%s): %s", description, error)
            self._failed = True


def _nowhere(_percent: float, _description: str) -> None:
    """Progress outside a Prefect run."""


def progress_publisher() -> Publish:
    """Where a fetch's progress goes: an artifact of the current Prefect run, if there is one."""
    in_run = TaskRunContext.get() is not None or FlowRunContext.get() is not None
    return ProgressArtifact() if in_run else _nowhere
