"""A stream of batches read ahead of its consumer, on a thread of its own.

pyarrow's Parquet writer encodes a whole row group at once, on one thread. Read on the same
thread, the source waits meanwhile: a PostgreSQL server stops sending once the socket's buffer
is full. Read ahead, it streams on while the group is encoded: a 5M-row PostgreSQL fetch took
5.2 s against 6.2 s (storage/cache.py's READ_AHEAD_BYTES).
"""

from __future__ import annotations

import contextvars
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa


@contextmanager
def read_ahead(reader: pa.RecordBatchReader, budget_bytes: int) -> Iterator[pa.RecordBatchReader]:
    """`reader`'s batches, read on a thread up to `budget_bytes` (and the batch that waits for
    room) ahead of the consumer.

    The thread runs in the caller's context (a fetch's progress reports go to its Prefect run).
    A failure of `reader` is raised to the consumer; on exit the thread is stopped and joined,
    after the batch it is reading, so that the caller may close the source.
    """
    ahead = _Ahead(reader, budget_bytes)
    try:
        yield pa.RecordBatchReader.from_batches(reader.schema, ahead.batches())
    finally:
        ahead.stop()


class _Ahead:
    def __init__(self, reader: pa.RecordBatchReader, budget_bytes: int) -> None:
        self._reader = reader
        self._budget = budget_bytes
        self._changed = threading.Condition()
        self._batches: deque[pa.RecordBatch] = deque()
        self._bytes = 0
        self._ended = False
        self._failure: BaseException | None = None
        self._stopping = False
        pump = contextvars.copy_context().run
        self._thread = threading.Thread(
            target=pump, args=(self._pump,), name="read-ahead", daemon=True
        )
        self._thread.start()

    def _pump(self) -> None:
        try:
            for batch in self._reader:
                with self._changed:
                    while self._bytes >= self._budget and not self._stopping:
                        self._changed.wait()
                    if self._stopping:
                        return
                    self._batches.append(batch)
                    self._bytes += batch.nbytes
                    self._changed.notify_all()
        except BaseException as exc:
            self._failure = exc
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def batches(self) -> Iterator[pa.RecordBatch]:
        while True:
            with self._changed:
                while not self._batches and not self._ended:
                    self._changed.wait()
                if not self._batches:
                    if self._failure is not None:
                        raise self._failure
                    return
                batch = self._batches.popleft()
                self._bytes -= batch.nbytes
                self._changed.notify_all()
            yield batch

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join()
