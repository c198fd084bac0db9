"""Inline flow runs in a child process of their own: the webhook's refreshes and lazy fetches.

Why a process: the webhook's queries hold the GIL for their Python work (parsing, catalog
reads, JSON), and a refresh thread that waits for the GIL waits on them, however low their CPU
priority. Measured with the bench's query load (16 aggregate and 4 runaway clients), a small
`POST /refresh` took 0.8-0.9 s with its flow run in the webhook's process, 0.3-0.37 s in a
process of its own, against 0.25 s undisturbed.

The child runs an InlineRunner (flows/inline.py) on a runtime of its own, built from the same
settings: the same catalog, cache and Prefect API. Calls go over a socket as (id, function,
arguments), the functions module-level, so they pickle by name; the child answers
(id, result, failure) from its threads. A child that dies fails the calls it was running with
InlineProcessExited, and the next call starts a new one.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from flows.inline import FlowRunner, InlineRunner
from runtime.container import build_runtime
from runtime.settings import Settings

T = TypeVar("T")

logger = logging.getLogger(__name__)

STOP_SECONDS = 30.0
# Not `python -m` this module: its classes must pickle under their module's name.
CHILD_MAIN = (
    "import sys; from flows.inline_process import serve_calls; serve_calls(int(sys.argv[1]))"
)


class InlineProcessExited(RuntimeError):
    """The child process running a call stopped before it answered."""


@dataclass(frozen=True)
class _Failure:
    """An exception on its way out of the child: its class, args and attributes (an exception's
    __init__ may take other arguments than its args, so it does not always unpickle) and the
    child's traceback."""

    kind: type[BaseException]
    args: tuple[Any, ...]
    attributes: dict[str, Any]
    traceback: str

    @classmethod
    def of(cls, error: BaseException) -> _Failure:
        text = "".join(traceback.format_exception(error))
        failure = cls(type(error), error.args, dict(vars(error)), text)
        try:
            pickle.dumps(failure)
        except Exception:  # a class or attribute that does not pickle: its type and message
            return cls(RuntimeError, (f"{type(error).__name__}: {error}",), {}, text)
        return failure

    def rebuilt(self) -> BaseException:
        try:
            error = self.kind.__new__(self.kind)
            error.args = self.args
            vars(error).update(self.attributes)
        except Exception:  # a class that needs its own arguments to exist at all
            error = RuntimeError(f"{self.kind.__name__}: {', '.join(map(str, self.args))}")
        error.add_note(f"raised in the inline process:\n{self.traceback}")
        return error


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    connection: Connection
    pending: dict[int, Future[Any]] = field(default_factory=dict)


class InlineProcess(FlowRunner):
    """Runs `fn(runtime, *args)` in a child process with `threads` threads;
    the child imports the `preload` modules as it starts."""

    def __init__(self, settings: Settings, threads: int, preload: Sequence[str] = ()) -> None:
        self._settings = settings
        self._threads = threads
        self._preload = tuple(preload)
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._child: _Child | None = None
        self._readers: list[threading.Thread] = []
        self._closed = False
        # A process starts at the CPU priority of the thread that starts it, and a query's
        # thread (at the lowest) may be the first to need a new child: children start here.
        self._starter = ThreadPoolExecutor(1, thread_name_prefix="freshcache-inline-starter")
        self._starter.submit(lambda: None).result()

    def start(self) -> None:
        """Start the child now, so that it imports what a flow run needs before the first call."""
        with self._lock:
            self._running_child()

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise InlineProcessExited("the inline process is closed")
            child = self._running_child()
            call_id = next(self._ids)
            child.pending[call_id] = future
            try:
                child.connection.send((call_id, fn, args))
            except BaseException:
                del child.pending[call_id]
                raise
        return future

    def close(self) -> None:
        """Let the child finish the runs in progress (up to STOP_SECONDS), then stop it."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
        if child is not None:
            with contextlib.suppress(OSError):  # it may be gone already
                child.connection.send(None)
            try:
                child.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        for reader in self._readers:
            reader.join()
        self._starter.shutdown()

    def _running_child(self) -> _Child:
        """The child, started anew if there is none or it died (called holding the lock)."""
        if self._child is None or self._child.process.poll() is not None:
            self._child = self._starter.submit(self._start_child).result()
        return self._child

    def _start_child(self) -> _Child:
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-c", CHILD_MAIN, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
            )
        connection = Connection(ours.detach())
        connection.send((self._settings, self._threads, self._preload))
        child = _Child(process, connection)
        reader = threading.Thread(
            target=self._read_answers, args=(child,), name="freshcache-inline-reader", daemon=True
        )
        reader.start()
        self._readers = [r for r in self._readers if r.is_alive()] + [reader]
        return child

    def _read_answers(self, child: _Child) -> None:
        try:
            while True:
                call_id, result, failure = child.connection.recv()
                with self._lock:
                    future = child.pending.pop(call_id)
                if failure is None:
                    future.set_result(result)
                else:
                    future.set_exception(failure.rebuilt())
        except (EOFError, OSError):
            pass  # the child closed its end: it stopped
        except Exception:
            logger.exception("an answer of the inline process could not be read; stopping it")
            child.process.kill()
        child.process.wait()
        child.connection.close()
        with self._lock:
            unanswered, child.pending = list(child.pending.values()), {}
        for future in unanswered:
            future.set_exception(
                InlineProcessExited(
                    f"the inline refresh process stopped (exit code {child.process.returncode}) "
                    "before it finished this run; a table it did not finish keeps its last "
                    "complete version"
                )
            )


def serve_calls(fd: int) -> None:
    """The child: run each call received on the connection `fd` and answer it, until told to
    stop. Ctrl-C reaches the whole process group: the parent stops this process as it stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    connection = Connection(fd)
    settings, threads, preload = connection.recv()
    for module in preload:  # what the calls will run, imported before the first one comes
        importlib.import_module(module)
    runtime = build_runtime(settings)
    runner = InlineRunner(threads, runtime)
    sending = threading.Lock()
    try:
        while True:
            try:
                message = connection.recv()
            except EOFError:
                # The parent died without a word: no one is left to answer.
                os._exit(1)
            if message is None:
                break
            call_id, fn, args = message
            runner.submit(fn, *args).add_done_callback(
                partial(_answer, connection, sending, call_id)
            )
    finally:
        runner.close()
        runtime.close()


def _answer(
    connection: Connection, sending: threading.Lock, call_id: int, done: Future[Any]
) -> None:
    error = done.exception()
    answer = (call_id, None, _Failure.of(error)) if error else (call_id, done.result(), None)
    with sending:
        try:
            connection.send(answer)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:  # nothing was sent
            connection.send((call_id, None, _Failure.of(exc)))
