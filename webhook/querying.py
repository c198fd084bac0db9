"""How POST /query runs: admission, a thread per running query, streaming, cancellation.

At most ``query_concurrency`` queries run at once; the others wait (on the event loop, holding no
thread) up to ``query_queue_seconds``, then get 503 with Retry-After. A running query works in a
thread of the service's own pool, at the lower CPU priority of DuckDB's query threads: queries
never take the threads refreshes and /health need, and while they take every core a refresh
and the Prefect server it talks to still get theirs. The response goes out once the first chunk
of the result is ready (a query that fails before gets its error status); a client that goes
away cancels its query, waiting or running.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from query import (
    MEDIA_TYPES,
    QueryCancelledError,
    QueryEngine,
    RunningQuery,
    encode,
    lower_this_threads_priority,
)
from query.formats import CSV

logger = logging.getLogger("freshcache.webhook")
T = TypeVar("T")


class QueryBusyError(Exception):
    """Every query slot stayed taken for as long as a query may wait."""

    def __init__(self, slots: int, waited: float) -> None:
        self.retry_after = max(1, math.ceil(waited))
        super().__init__(
            f"all {slots} query slots stayed busy for {waited:g} s "
            f"(FRESHCACHE_QUERY_CONCURRENCY): try again in {self.retry_after} s"
        )


class QueryService:
    """The engine and the admission of one app."""

    def __init__(self, engine: QueryEngine, slots: int, wait_seconds: float) -> None:
        self.engine = engine
        self.slots = slots
        self.wait_seconds = wait_seconds
        self._admission = anyio.Semaphore(slots)
        # One per running query, all it needs.
        self._threads = ThreadPoolExecutor(
            slots, thread_name_prefix="freshcache-query", initializer=lower_this_threads_priority
        )

    def close(self) -> None:
        """Wait for the queries' threads to finish their work."""
        self._threads.shutdown(wait=True, cancel_futures=True)

    async def run(self, query: QueryCall, send: Send) -> None:
        """Wait for a slot, run the query and stream its result."""
        try:
            self._admission.acquire_nowait()  # fails while others wait: they come first
        except anyio.WouldBlock:
            with anyio.move_on_after(self.wait_seconds) as waiting:
                await self._admission.acquire()
            if waiting.cancelled_caught:
                raise QueryBusyError(self.slots, self.wait_seconds) from None
        try:
            await self._run(query, send)
        finally:
            self._admission.release()

    async def _run(self, call: QueryCall, send: Send) -> None:
        def begin() -> tuple[bytes, bool]:
            # call.running is set in the thread, so that a cancelled wait cannot lose it.
            running = self.engine.start(
                call.sql,
                timeout_seconds=call.timeout_seconds,
                max_staleness_seconds=call.max_staleness_seconds,
            )
            call.started(running)
            body = _Body(running, encode(running, call.media_type, self.engine.limits))
            call.body = body
            return body.step()

        try:
            chunk, last = await self._in_thread(begin)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", call.content_type.encode())],
                }
            )
            await send({"type": "http.response.body", "body": chunk, "more_body": not last})
            if not last:
                assert call.body is not None
                await self._stream(call.body, send)
        finally:
            if call.running is not None and not call.running.closed:
                with anyio.CancelScope(shield=True):
                    await self._in_thread(call.running.close)

    async def _stream(self, body: _Body, send: Send) -> None:
        last = False
        while not last:
            try:
                chunk, last = await self._in_thread(body.step)
            except Exception as exc:
                # The status is out already: the response ends unfinished, so that the client
                # cannot take what it got for the whole result.
                logger.warning("query failed while its result was streaming: %s", exc)
                return
            await send({"type": "http.response.body", "body": chunk, "more_body": not last})

    async def _in_thread(self, work: Callable[[], T]) -> T:
        future = asyncio.wrap_future(self._threads.submit(work))
        # As anyio.to_thread does: a cancelled caller still waits for the thread's work (a
        # query being prepared or closed), so that what comes after never races it.
        with anyio.CancelScope(shield=True):
            result = await future
        return result


class _Body:
    """A result's chunks, read one ahead so that the last is known as such: the query closes
    with it, in the same trip to a thread."""

    def __init__(self, running: RunningQuery, chunks: Iterator[bytes]) -> None:
        self._running = running
        self._chunks = chunks
        self._ahead: bytes | None = None

    def step(self) -> tuple[bytes, bool]:
        chunk = self._ahead if self._ahead is not None else next(self._chunks)
        self._ahead = next(self._chunks, None)
        if self._ahead is None:
            self._running.close()
        return chunk, self._ahead is None


@dataclass
class QueryCall:
    sql: str
    timeout_seconds: float | None
    media_type: str
    max_staleness_seconds: float | None = None
    running: RunningQuery | None = None
    body: _Body | None = None
    cancelled: bool = False

    def started(self, running: RunningQuery) -> None:
        self.running = running
        if self.cancelled:  # the client left while the query was being prepared
            running.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        if self.running is not None:
            self.running.cancel()

    @property
    def content_type(self) -> str:
        return f"{self.media_type}; charset=utf-8" if self.media_type == CSV else self.media_type


class QueryResponse(Response):
    """Runs the query while it answers; the client going away cancels it."""

    def __init__(self, service: QueryService, call: QueryCall) -> None:
        self.service = service
        self.call = call
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        failure: Exception | None = None
        disconnected = False
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                nonlocal disconnected
                while (await receive())["type"] != "http.disconnect":
                    pass
                disconnected = True
                self.call.cancel()
                group.cancel_scope.cancel()

            group.start_soon(watch)
            try:
                await self.service.run(self.call, send)
            except Exception as exc:  # raised outside the group, which would wrap it
                failure = exc
            finally:
                group.cancel_scope.cancel()
        if failure is not None and not (disconnected and isinstance(failure, QueryCancelledError)):
            raise failure


def negotiate(accept: str | None) -> str:
    """The media type of the answer: the supported one the Accept header prefers, JSON first."""
    best, best_quality = None, 0.0
    for item in (accept or "*/*").split(","):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        for media_type in MEDIA_TYPES:
            if _matches(media_range.lower(), media_type) and quality > best_quality:
                best, best_quality = media_type, quality
    if best is None:
        raise NotAcceptableError(
            f"the result can be {', '.join(MEDIA_TYPES)}; the Accept header asks for none of them"
        )
    return best


def _matches(media_range: str, media_type: str) -> bool:
    kind = media_type.split("/")[0]
    return media_range in (media_type, "*/*", f"{kind}/*")


class NotAcceptableError(Exception):
    """The Accept header names no format the result comes in."""
