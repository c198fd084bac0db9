"""StorageError and the translation of file-system failures into it."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager


class StorageError(Exception):
    """A cache storage operation failed; the message names the operation, the target and why."""


def _reason(exc: OSError, bucket: str | None) -> str:
    if isinstance(exc, FileNotFoundError) and bucket is not None:
        return f"S3 bucket {bucket!r} does not exist ({exc})"
    if isinstance(exc, PermissionError):
        return f"permission denied ({exc})"
    if exc.errno == errno.ENOSPC:
        return f"no space left on device ({exc})"
    if exc.errno == errno.EROFS:
        return f"read-only file system ({exc})"
    if exc.errno == errno.EDQUOT:
        return f"disk quota exceeded ({exc})"
    return f"{type(exc).__name__}: {exc}"


@contextmanager
def storage_errors(action: str, target: str, *, bucket: str | None = None) -> Iterator[None]:
    """Re-raise an ``OSError`` (s3fs maps S3 errors to ``OSError`` subclasses) as StorageError."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"cannot {action} {target}: {_reason(exc, bucket)}") from exc
