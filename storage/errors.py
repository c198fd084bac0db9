"""StorageError and the translation of file-system failures into it."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager


def _s3_client_errors() -> tuple[type[Exception], ...]:
    """botocore's errors that s3fs lets through untranslated (e.g. an unreachable endpoint)."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # no S3 support installed: only OSError can occur
        return ()
    return (BotoCoreError, ClientError)


_TRANSLATED: tuple[type[Exception], ...] = (OSError, *_s3_client_errors())


class StorageError(Exception):
    """A cache storage operation failed; the message names the operation, the target and why."""


def _reason(exc: Exception, bucket: str | None) -> str:
    if not isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
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
    """Re-raise an OSError (s3fs maps most S3 errors to one) or botocore error as StorageError."""
    try:
        yield
    except _TRANSLATED as exc:
        raise StorageError(f"cannot {action} {target}: {_reason(exc, bucket)}") from exc
