"""A query's result as JSON, CSV or an Arrow IPC stream, in chunks, within its limits.

Every format stops at the row limit and at the byte limit, at a row boundary, and holds only a
chunk at a time. How each reports that it stopped early:

- JSON: ``"truncated": true`` (the fields after ``rows`` come last, once the rows are out);
- Arrow: a last, empty record batch with the custom metadata ``freshcache.truncated: true``;
- CSV has no place for it: the rows simply end.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pydantic import BaseModel

from query.engine import Limits, RunningQuery
from query.values import row_converter

JSON = "application/json"
CSV = "text/csv"
ARROW = "application/vnd.apache.arrow.stream"
MEDIA_TYPES = (JSON, CSV, ARROW)
TRUNCATED_METADATA = {"freshcache.truncated": "true"}

CHUNK_BYTES = 256 * 1024  # what a chunk gathers before it goes out
FETCH_ROWS = 2048
ARROW_BATCH_ROWS = 65_536
# Room kept under the byte limit for what follows the JSON rows.
_JSON_TAIL_BYTES = 96


class QueryResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    row_count: int
    execution_time_ms: int
    truncated: bool


@dataclass
class _Tally:
    rows: int = 0
    bytes: int = 0
    truncated: bool = False


def encode(query: RunningQuery, media_type: str, limits: Limits) -> Iterator[bytes]:
    """The response body in chunks; the query runs when the first chunk is asked for."""
    if media_type == CSV:
        return _chunked(_csv(query, limits))
    if media_type == ARROW:
        return _chunked(_arrow(query, limits))
    return _chunked(_json(query, limits))


def collect(query: RunningQuery, limits: Limits) -> QueryResult:
    """The JSON result as one object."""
    return QueryResult.model_validate_json(b"".join(_json(query, limits)))


def _json(query: RunningQuery, limits: Limits) -> Iterator[bytes]:
    columns = query.execute()
    convert = row_converter([kind for _, kind in columns])
    head = b'{"columns":' + _json_bytes([name for name, _ in columns]) + b',"rows":['
    tally = _Tally(bytes=len(head) + _JSON_TAIL_BYTES)

    def rows_json(rows: list[tuple[Any, ...]]) -> bytes:
        return _json_bytes([convert(row) for row in rows])[1:-1]  # the rows, without [ ]

    yield head
    yield from _limited_rows(query, limits, tally, rows_json, b",")
    yield (
        f'],"row_count":{tally.rows},"execution_time_ms":{query.elapsed_ms},'
        f'"truncated":{json.dumps(tally.truncated)}}}'
    ).encode()


def _csv(query: RunningQuery, limits: Limits) -> Iterator[bytes]:
    columns = query.execute()
    convert = row_converter([kind for _, kind in columns])
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def lines(rows: list[Any]) -> bytes:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(rows)
        return buffer.getvalue().encode()

    head = lines([[name for name, _ in columns]])
    tally = _Tally(bytes=len(head))
    yield head
    yield from _limited_rows(
        query, limits, tally, lambda rows: lines([_csv_cells(convert(row)) for row in rows]), b""
    )


def _limited_rows(
    query: RunningQuery,
    limits: Limits,
    tally: _Tally,
    encode_rows: Callable[[list[tuple[Any, ...]]], bytes],
    separator: bytes,
) -> Iterator[bytes]:
    """The rows encoded while both limits allow; one row more is read to tell truncation.

    A batch that fits goes out whole; the one that reaches the byte limit, row by row.
    """
    while rows := query.fetch_rows(min(FETCH_ROWS, limits.rows + 1 - tally.rows)):
        room = limits.rows - tally.rows
        if len(rows) > room:
            rows, tally.truncated = rows[:room], True
        if not rows:
            return
        data = (separator if tally.rows else b"") + encode_rows(rows)
        if tally.bytes + len(data) <= limits.bytes:
            tally.rows += len(rows)
            tally.bytes += len(data)
            yield data
        else:
            for row in rows:
                data = (separator if tally.rows else b"") + encode_rows([row])
                if tally.bytes + len(data) > limits.bytes:
                    tally.truncated = True
                    return
                tally.rows += 1
                tally.bytes += len(data)
                yield data
        if tally.truncated:
            return


def _arrow(query: RunningQuery, limits: Limits) -> Iterator[bytes]:
    reader = query.execute_arrow(ARROW_BATCH_ROWS)
    sink = _Sink()
    writer = pa.ipc.new_stream(sink, reader.schema)
    # Room for the end of the stream: the truncation marker and the end-of-stream message.
    empty = pa.RecordBatch.from_pylist([], schema=reader.schema)
    tail = pa.ipc.get_record_batch_size(empty) + 256
    tally = _Tally(bytes=sink.size + tail)
    for batch in reader:
        fitting = _fitting(batch, limits.rows - tally.rows, limits.bytes - tally.bytes)
        tally.truncated = fitting.num_rows < batch.num_rows
        if fitting.num_rows:
            writer.write_batch(fitting)
            tally.rows += fitting.num_rows
            tally.bytes = sink.size + tail
            yield sink.take()
        if tally.truncated:
            writer.write_batch(empty, custom_metadata=TRUNCATED_METADATA)
            break
    writer.close()
    yield sink.take()


def _fitting(batch: pa.RecordBatch, rows: int, space: int) -> pa.RecordBatch:
    """The longest head of ``batch`` with at most ``rows`` rows whose IPC message fits ``space``."""
    low, high = 0, min(rows, batch.num_rows)
    if pa.ipc.get_record_batch_size(batch.slice(0, high)) <= space:
        return batch.slice(0, high)
    while low < high:  # the largest count that fits, by bisection
        middle = (low + high + 1) // 2
        if pa.ipc.get_record_batch_size(batch.slice(0, middle)) <= space:
            low = middle
        else:
            high = middle - 1
    return batch.slice(0, low)


class _Sink:
    """A file-like object pyarrow writes to, emptied as chunks go out."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0  # everything written so far
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def _chunked(parts: Iterator[bytes]) -> Iterator[bytes]:
    """Gather ``parts`` into chunks of about CHUNK_BYTES (the last one may be smaller)."""
    pending: list[bytes] = []
    size = 0
    for part in parts:
        pending.append(part)
        size += len(part)
        if size >= CHUNK_BYTES:
            yield b"".join(pending)
            pending.clear()
            size = 0
    yield b"".join(pending)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode()


def _csv_cells(values: Sequence[Any]) -> list[Any]:
    """CSV cells of JSON-safe values: lists and objects as JSON text, NULL empty."""
    cells = []
    for value in values:
        if isinstance(value, bool):
            cells.append("true" if value else "false")
        elif isinstance(value, list | dict):
            cells.append(_json_bytes(value).decode())
        else:
            cells.append(value)
    return cells
