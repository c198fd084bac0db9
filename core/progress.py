"""A table fetch's progress, reported to whoever publishes it (tasks/progress.py: a Prefect
progress artifact of the run that fetches it).

A fetch shorter than the interval reports nothing: its run's result says everything, and an
artifact per fetch cost a small table's refresh two more API calls (~45 ms of ~0.35 s). Once a
fetch has run for the interval (waiting for a slot of its connection included), it is reported
`started` or with its rows so far, then at most once per interval as rows arrive from the
source, whatever the batch size, and at 100 once the file is written. The percentage is of the
rows of the file being replaced, when there is one (the table's size last time), else it stays
at 0 and the description tells the rows so far.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator

import pyarrow as pa

# Where progress goes: a percentage and a description.
Publish = Callable[[float, str], None]
# Calls a function after a delay, once, unless the returned function cancels it first.
After = Callable[[float, Callable[[], None]], Callable[[], None]]


def after(delay: float, action: Callable[[], None]) -> Callable[[], None]:
    """`action` on a timer thread after `delay` seconds, in the caller's context (its Prefect
    run, for one); returns what cancels it."""
    timer = threading.Timer(delay, contextvars.copy_context().run, args=(action,))
    timer.daemon = True
    timer.start()
    return timer.cancel


class FetchProgress:
    """The progress of one fetch of `label`, which is expected to bring `expected_rows()` rows
    (None: unknown), asked once, when the first report during the fetch is due."""

    def __init__(
        self,
        label: str,
        expected_rows: Callable[[], int | None],
        publish: Publish,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        timer: After = after,
    ) -> None:
        self._label = label
        self._expected_rows = expected_rows
        self._expected: int | None = None
        self._asked = False
        self._publish = publish
        self._interval = interval
        self._clock = clock
        self._timer = timer
        self._cancel_timer: Callable[[], None] = lambda: None
        self._lock = threading.Lock()  # the timer thread reports too
        self._reported = False
        self._reported_at = clock()
        self._rows = 0

    def __enter__(self) -> FetchProgress:
        """The fetch begins (before it waits for a slot): reported once it has run the interval."""
        self._reported_at = self._clock()
        self._cancel_timer = self._timer(self._interval, self._still_running)
        return self

    def __exit__(self, *_exc: object) -> None:
        """The fetch is over: a failed one reports nothing more (its run's state says why), and
        the timer no longer fires once its run has ended."""
        self._cancel_timer()
        with self._lock:
            self._reported = True

    def reading(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        """`reader`, counting its rows as they are read."""
        return pa.RecordBatchReader.from_batches(reader.schema, self._counted(reader))

    def finish(self, rows: int) -> None:
        """The file is written, with `rows` rows (in the `with` block)."""
        self._cancel_timer()
        with self._lock:
            if self._reported:
                self._report(100.0, f"{self._label}: {rows:,} rows fetched")
            self._reported = True  # a timer that fires now has nothing to say

    def _still_running(self) -> None:
        with self._lock:
            if not self._reported:
                self._report(0.0, f"{self._label}: started")

    def _counted(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in reader:
            self._rows += batch.num_rows
            if self._clock() - self._reported_at >= self._interval:
                with self._lock:
                    self._report_rows()
            yield batch

    def _report_rows(self) -> None:
        if not self._asked:
            self._expected, self._asked = self._expected_rows(), True
        if self._expected:
            # Never 100 before the end: the table may have grown since.
            percent = min(99.0, round(100 * self._rows / self._expected, 1))
            of = f" of about {self._expected:,}"
        else:
            percent, of = 0.0, ""
        self._report(percent, f"{self._label}: {self._rows:,}{of} rows fetched so far")

    def _report(self, percent: float, description: str) -> None:
        self._reported, self._reported_at = True, self._clock()
        self._publish(percent, description)


def fetch_progress(
    connection_name: str,
    schema_name: str,
    table_name: str,
    expected_rows: Callable[[], int | None],
    publish: Publish,
    interval: float,
) -> FetchProgress:
    """The progress of a fetch of a table, reported to `publish` every `interval` seconds."""
    label = f"{schema_name}.{table_name} of connection {connection_name!r}"
    return FetchProgress(label, expected_rows, publish, interval=interval)
