"""Typed source errors; every message names the connection and the cause, never a password."""

from __future__ import annotations

from urllib.parse import quote, quote_plus

REDACTED = "***"


class SourceError(Exception):
    """Base of every error raised by `sources`."""

    def __init__(self, connection_name: str | None, cause: str) -> None:
        self.connection_name = connection_name
        self.cause = cause
        prefix = f"connection {connection_name!r}" if connection_name else "source"
        super().__init__(f"{prefix}: {cause}")


class SourceConfigError(SourceError):
    """The connection's config does not validate."""


class SourceUnavailableError(SourceError):
    """Unreachable host, timeout, dropped connection, missing file: transient, worth a retry."""


class SourceAuthError(SourceError):
    """The source rejected the credentials: not worth a retry."""


class SourceTableNotFoundError(SourceError):
    """The table no longer exists (dropped since discovery)."""


class SourceSchemaChangedError(SourceError):
    """The table's columns differ from the discovered schema."""


class TargetWriteError(OSError):
    """Writing the Parquet file failed, not reading the source (write_parquet): an OSError
    with the errno the write met and no path in its message, for the storage to report."""


def redact(text: str, password: str | None) -> str:
    """`text` with every plain or URL-encoded occurrence of `password` masked."""
    if not password:
        return text
    for form in {password, quote(password, safe=""), quote_plus(password)}:
        text = text.replace(form, REDACTED)
    return text
