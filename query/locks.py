"""One lock per table, so that concurrent first queries of a table fetch it once."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar
from weakref import WeakValueDictionary

Key = TypeVar("Key")


class _Lock:
    """A threading lock that can be held weakly (the registry forgets locks nobody holds)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


class KeyedLocks(Generic[Key]):
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: WeakValueDictionary[Key, _Lock] = WeakValueDictionary()

    def __call__(self, key: Key) -> _Lock:
        """The lock of ``key``; keep the returned object while holding it."""
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = _Lock()
            return lock
