"""storage/read_ahead.py: a writer's input read ahead on a thread, within a byte budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar

import pyarrow as pa
import pytest

from storage.read_ahead import read_ahead

SCHEMA = pa.schema([("n", pa.int64())])
BATCH = pa.record_batch([pa.array(range(1000), pa.int64())], schema=SCHEMA)
WAIT_SECONDS = 10


class Source:
    """A reader of `batches` copies of BATCH that counts what has been read from it."""

    def __init__(self, batches: int, fail_after: int | None = None) -> None:
        self.read = 0
        self._batches = batches
        self._fail_after = fail_after

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(SCHEMA, self._generate())

    def _generate(self) -> Iterator[pa.RecordBatch]:
        for n in range(self._batches):
            if n == self._fail_after:
                raise ConnectionResetError("the source went away")
            self.read += 1
            yield BATCH

    def settles_at(self, count: int) -> bool:
        """Whether reads reach `count` and go no further while the consumer waits."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.read < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # time for the thread to read past its budget, if it would
        return self.read == count


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "read-ahead"]


def test_every_batch_arrives_in_order() -> None:
    source = Source(50)
    with read_ahead(source.reader(), budget_bytes=3 * BATCH.nbytes) as ahead:
        batches = list(ahead)
    assert len(batches) == 50 and all(b.equals(BATCH) for b in batches)
    assert ahead.schema == SCHEMA
    assert read_ahead_threads() == []


def test_reads_on_while_the_consumer_works_and_stops_at_its_budget() -> None:
    source = Source(50)
    with read_ahead(source.reader(), budget_bytes=3 * BATCH.nbytes) as ahead:
        next(iter(ahead))
        # One batch taken, three waiting for the consumer (the budget), one read waiting for room.
        assert source.settles_at(5)
        next(iter(ahead))
        assert source.settles_at(6)


def test_a_failing_source_fails_the_consumer_after_the_batches_it_gave() -> None:
    source = Source(50, fail_after=7)
    received = 0
    with (
        pytest.raises(ConnectionResetError, match="the source went away"),
        read_ahead(source.reader(), budget_bytes=3 * BATCH.nbytes) as ahead,
    ):
        for _ in ahead:
            received += 1
    assert received == 7
    assert read_ahead_threads() == []


def test_a_consumer_that_stops_early_stops_the_reading_before_the_source_closes() -> None:
    source = Source(1000)
    with (
        pytest.raises(OSError, match="disk full"),
        read_ahead(source.reader(), budget_bytes=3 * BATCH.nbytes) as ahead,
    ):
        next(iter(ahead))
        raise OSError("disk full")
    # The thread is gone when the block ends: the caller may close the source now.
    assert read_ahead_threads() == []
    assert source.read <= 6


def test_the_source_is_read_in_the_callers_context() -> None:
    run: ContextVar[str] = ContextVar("run", default="none")
    seen: list[str] = []

    def batches() -> Iterator[pa.RecordBatch]:
        seen.append(run.get())
        yield BATCH

    run.set("the caller's run")
    reader = pa.RecordBatchReader.from_batches(SCHEMA, batches())
    with read_ahead(reader, budget_bytes=BATCH.nbytes) as ahead:
        list(ahead)
    assert seen == ["the caller's run"]
