"""Cache path naming: injective, root-safe path components and time-sortable version ids."""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from datetime import UTC, datetime

# Every character outside this set is percent-encoded (UTF-8 bytes, uppercase hex). Uppercase
# letters are escaped too, so two names differing only in case never collide, even on a
# case-insensitive file system: the encoded form contains no uppercase letter outside an escape.
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
# Encoded components longer than this become a readable prefix + "~" + sha256 of the full name,
# keeping every component far below the 255-byte limit of common file systems.
MAX_COMPONENT_LENGTH = 120
_PREFIX_LENGTH = 48
# Stands for the empty name. "~" never appears in a plain encoding, and a hashed one always has
# 64 hex digits after it, so this cannot collide with anything else.
_EMPTY = "~"
# A file being written is named `<final name>.tmp-<16 hex digits>` until it is complete. No cache
# file's name contains a "." before its ".parquet" (encoded components have none), so a
# temporary is never taken for a cache file, nor a cache file for a temporary.
_TEMPORARY = re.compile(r"\.tmp-[0-9a-f]{16}$")


def encode_component(name: str) -> str:
    """Encode a remote schema or table name as one safe, non-empty path component.

    The mapping is injective (distinct names give distinct components, also after case folding)
    and the result contains only ``[a-z0-9_%~-]`` and uppercase hex digits, so it can never be
    ``.``, ``..``, contain a separator or a NUL, or start with ``~`` followed by a path.
    """
    if not name:
        return _EMPTY
    parts: list[str] = []
    for char in name:
        if char in _SAFE:
            parts.append(char)
        else:
            parts.extend(f"%{byte:02X}" for byte in char.encode("utf-8", "surrogatepass"))
    if sum(len(part) for part in parts) <= MAX_COMPONENT_LENGTH:
        return "".join(parts)
    prefix = ""
    for part in parts:  # cut on a part boundary so the prefix never ends in half an escape
        if len(prefix) + len(part) > _PREFIX_LENGTH:
            break
        prefix += part
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}~{digest}"


class VersionClock:
    """Issues version ids, unique on every call and sorting by creation time.

    An id is ``<UTC time to the nanosecond>-<16 random hex digits>``. The time part is strictly
    increasing within a process (bumped by 1 ns when the clock stalls or goes backwards); the
    random part keeps ids from different processes or machines apart.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ns = 0

    def next_id(self) -> str:
        with self._lock:
            now_ns = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = now_ns
        seconds, nanos = divmod(now_ns, 1_000_000_000)
        stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y%m%dT%H%M%S")
        return f"{stamp}{nanos:09d}Z-{secrets.token_hex(8)}"


def temporary_name(path: str) -> str:
    """A fresh name, in the directory of ``path``, to write ``path`` under until it is complete."""
    return f"{path}.tmp-{secrets.token_hex(8)}"


def is_temporary(path: str) -> bool:
    """Whether ``path`` names a file still being written (or abandoned while it was)."""
    return _TEMPORARY.search(path) is not None
