"""A table fetch's progress, reported to whoever publishes it (tasks/progress.py: a Prefect
progress artifact of the run that fetches it).

The first report is made when the fetch starts (before it waits for a slot of the connection,
so that the slot is held for the fetch alone), the last, at 100, once the file is written. In
between, rows are counted as they arrive from the source and reported at most once per
UPDATE_SECONDS, whatever the batch size: the percentage is of the rows of the file being
replaced, when there is one (the table's size last time), else it stays at 0 and the
description tells the rows so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pyarrow as pa

UPDATE_SECONDS = 1.0

# Where progress goes: a percentage and a description.
Publish = Callable[[float, str], None]


class FetchProgress:
    """The progress of one fetch of `label`, which is expected to bring `expected_rows()` rows
    (None: unknown), asked once, when the first report during the fetch is due."""

    def __init__(
        self,
        label: str,
        expected_rows: Callable[[], int | None],
        publish: Publish,
        *,
        interval: float = UPDATE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._expected_rows = expected_rows
        self._expected: int | None = None
        self._asked = False
        self._publish = publish
        self._interval = interval
        self._clock = clock
        self._reported_at = clock()
        self._rows = 0

    def start(self) -> None:
        self._report(0.0, f"{self._label}: started")

    def reading(self, reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
        """`reader`, counting its rows as they are read."""
        return pa.RecordBatchReader.from_batches(reader.schema, self._counted(reader))

    def finish(self, rows: int) -> None:
        self._report(100.0, f"{self._label}: {rows:,} rows fetched")

    def _counted(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        for batch in reader:
            self._rows += batch.num_rows
            if self._clock() - self._reported_at >= self._interval:
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
        self._reported_at = self._clock()
        self._publish(percent, description)


def fetch_progress(
    connection_name: str,
    schema_name: str,
    table_name: str,
    expected_rows: Callable[[], int | None],
    publish: Publish,
) -> FetchProgress:
    """The progress of a fetch of a table, reported to `publish`."""
    label = f"{schema_name}.{table_name} of connection {connection_name!r}"
    return FetchProgress(label, expected_rows, publish)
