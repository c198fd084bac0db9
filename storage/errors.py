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
    """A cache storage operation failed; the message names the operation, the target and why.

    The reason never carries a file name: a caller that knows what the file is (the cache file
    of a table) names it with `about`, so that no server path reaches a user.
    """

    def __init__(self, action: str, target: str, reason: str) -> None:
        super().__init__(f"cannot {action} {target}: {reason}")
        self.action = action
        self.target = target
        self.reason = reason

    def about(self, target: str) -> StorageError:
        """The same failure, naming `target` instead of the path."""
        return StorageError(self.action, target, self.reason)


def _reason(exc: Exception, bucket: str | None) -> str:
    if not isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
    # strerror, unlike str(exc), leaves out the file names.
    detail = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError) and bucket is not None:
        return f"S3 bucket {bucket!r} does not exist"
    if isinstance(exc, PermissionError):
        return "permission denied" + (
            f" ({detail})" if detail.lower() != "permission denied" else ""
        )
    if exc.errno == errno.ENOSPC:
        return "no space left on device"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    return f"{type(exc).__name__}: {detail}"


@contextmanager
def storage_errors(action: str, target: str, *, bucket: str | None = None) -> Iterator[None]:
    """Re-raise an OSError (s3fs maps most S3 errors to one) or botocore error as StorageError."""
    try:
        yield
    except _TRANSLATED as exc:
        raise StorageError(action, target, _reason(exc, bucket)) from exc
