"""Failures of the cache named by the table whose file it is, never by the file's path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from storage import StorageError


@contextmanager
def naming_the_table(connection_name: str, schema_name: str, table_name: str) -> Iterator[None]:
    """A storage failure names the table whose cache file it is, never the file's path."""
    try:
        yield
    except StorageError as exc:
        target = (
            f"the cache file of connection {connection_name!r}, table {schema_name}.{table_name}"
        )
        raise exc.about(target) from exc
