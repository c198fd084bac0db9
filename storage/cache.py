"""CacheStorage: the Parquet cache on a local directory or under an s3:// prefix."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.errors import StorageError, storage_errors
from storage.naming import VersionClock, encode_component
from storage.parquet import write_batches
from storage.read_ahead import read_ahead
from storage.sinks import local_sink, s3_sink, s3_target, uploaded_when_complete
from storage.staging import remove_abandoned_temporaries, staged_local_file

if TYPE_CHECKING:
    import duckdb

# Size of one multipart-upload part, which is also what a writer buffers in memory. S3 allows
# 10,000 parts, so a single cache file can reach 320 GiB.
S3_PART_SIZE = 32 * 1024 * 1024
_S3 = "s3://"
# How far a streamed write reads its source ahead of the writer (storage/read_ahead.py). On a
# 5M-row PostgreSQL fetch: none 6.2 s / 383 MB peak, 32 MiB 5.2 s / ~420 MB, 64 MiB no faster.
READ_AHEAD_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class CacheFile:
    """One cache file found under the root."""

    path: str
    size: int
    modified: datetime  # timezone-aware UTC


class CacheStorage:
    """Versioned Parquet files under a local directory or an ``s3://bucket/prefix`` root."""

    root: str
    is_s3: bool
    filesystem: fsspec.AbstractFileSystem

    def __init__(
        self,
        url: str,
        *,
        s3_endpoint_url: str | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self._clock = VersionClock()
        if url.startswith(_S3):
            self._init_s3(url, s3_endpoint_url, storage_options or {})
        elif "://" in url and not url.startswith("file://"):
            raise ValueError(f"unsupported cache URL {url!r}: use a local directory or s3://")
        else:
            self._init_local(url.removeprefix("file://"))

    def _init_local(self, directory: str) -> None:
        self.is_s3 = False
        self._bucket: str | None = None
        self.root = os.path.realpath(os.path.expanduser(directory))
        with storage_errors("create the cache directory", self.root):
            os.makedirs(self.root, exist_ok=True)
        self.filesystem = fsspec.filesystem("file")

    def _init_s3(self, url: str, endpoint: str | None, options: dict[str, Any]) -> None:
        import s3fs  # only needed, and only imported, for an S3 cache

        bucket, _, prefix = url.removeprefix(_S3).partition("/")
        parts = [part for part in prefix.split("/") if part]
        if not bucket:
            raise ValueError(f"S3 cache URL {url!r} names no bucket")
        if any(part in (".", "..") for part in parts):
            raise ValueError(f"S3 cache URL {url!r} has a '.' or '..' component")
        self.is_s3 = True
        self._bucket = bucket
        self.root = _S3 + "/".join([bucket, *parts])
        settings: dict[str, Any] = {
            "use_listings_cache": False,  # other processes write and delete too
            "default_block_size": S3_PART_SIZE,
            **options,
        }
        if endpoint:
            settings["endpoint_url"] = endpoint
        self.filesystem = s3fs.S3FileSystem(**settings)

    def __repr__(self) -> str:
        return f"CacheStorage({self.root!r})"

    def _join(self, *components: str) -> str:
        if self.is_s3:
            return "/".join([self.root, *components])
        return os.path.join(self.root, *components)

    def new_version_path(self, connection_id: int, schema_name: str, table_name: str) -> str:
        """A fresh path ``<root>/<connection_id>/<schema>/<table>/<version>.parquet``."""
        if type(connection_id) is not int or connection_id < 0:  # bool is no connection id
            raise ValueError(f"connection_id must be a non-negative int, not {connection_id!r}")
        return self._join(
            str(connection_id),
            encode_component(schema_name),
            encode_component(table_name),
            f"{self._clock.next_id()}.parquet",
        )

    def contains(self, path: str) -> bool:
        """Whether ``path`` lies strictly inside the root, after normalization."""
        if self.is_s3:
            if not path.startswith(self.root + "/"):
                return False
            parts = path.removeprefix(_S3).split("/")
            return not any(part in ("", ".", "..") for part in parts)
        if "\0" in path:
            return False
        normalized = os.path.normpath(os.path.abspath(path))
        return normalized != self.root and os.path.commonpath([self.root, normalized]) == self.root

    def _require_inside(self, path: str) -> str:
        if not self.contains(path):
            raise ValueError(f"{path!r} is outside the cache root {self.root!r}")
        return path if self.is_s3 else os.path.normpath(os.path.abspath(path))

    def writing(self, path: str) -> AbstractContextManager[str]:
        """Yield where to write the file ``path``; it appears at ``path`` only when complete.

        Locally that is a temporary in the same directory, locked while the block runs (the
        sweep never removes it), renamed to ``path`` when the block succeeds and removed when
        it fails. On S3 it is ``path`` itself: a multipart upload is invisible until completed.
        Any writer can fill it, e.g. DuckDB's ``COPY ... TO``.
        """
        path = self._require_inside(path)
        if self.is_s3:
            return s3_target(self.filesystem, path)
        return staged_local_file(path)

    @contextmanager
    def open_write(self, path: str) -> Iterator[BinaryIO]:
        """A streaming writer for ``path`` (see `writing`); on an exception nothing is left."""
        with self.writing(path) as target:
            if self.is_s3:
                assert self._bucket is not None
                sink = s3_sink(self.filesystem, target, self._bucket)
            else:
                sink = local_sink(target)
            try:
                with sink as handle:
                    yield handle
            except StorageError as exc:
                raise exc.about(path) from exc  # the file's name, not its temporary's

    def write_parquet(
        self, path: str, reader: pa.RecordBatchReader, *, compression: str = "zstd"
    ) -> int:
        """Stream ``reader`` into a Parquet file at ``path``; return the number of rows written.

        ``reader`` is read up to READ_AHEAD_BYTES ahead of the writer (storage/read_ahead.py).
        On any exception nothing is left at ``path``; the reader's own exceptions propagate
        unchanged, storage failures as StorageError.
        """
        with self.open_write(path) as sink, read_ahead(reader, READ_AHEAD_BYTES) as ahead:
            return write_batches(ahead, sink, compression=compression)

    def read_parquet(
        self,
        path: str,
        *,
        columns: list[str] | None = None,
        where: pc.Expression | None = None,
    ) -> pa.Table:
        """A cache file's rows as written (only `columns`; only the rows `where` selects)."""
        path = self._require_inside(path)
        with storage_errors("read", path), self.filesystem.open(path, "rb") as handle:
            return pq.read_table(handle, columns=columns, filters=where)

    def iter_parquet(self, path: str) -> Iterator[pa.RecordBatch]:
        """A cache file's rows as written, batch by batch."""
        path = self._require_inside(path)
        with storage_errors("read", path), self.filesystem.open(path, "rb") as handle:
            yield from pq.ParquetFile(handle).iter_batches()

    def write_file(self, path: str, write: Callable[[str], int]) -> int:
        """Have ``write(local_path)`` write the file ``path`` (e.g. DuckDB's ``COPY ... TO``)
        and return what it returns. Locally it writes the temporary of `writing`; for S3 a
        local temporary, uploaded when complete. The file appears at ``path`` only if all
        succeeds; an OSError ``write`` raises is a StorageError."""
        path = self._require_inside(path)
        staging: AbstractContextManager[str]
        if self.is_s3:
            assert self._bucket is not None
            staging = uploaded_when_complete(self.filesystem, path, self._bucket, S3_PART_SIZE)
        else:
            staging = self.writing(path)
        with staging as target, storage_errors("create", path, bucket=self._bucket):
            return write(target)

    def delete(self, path: str) -> bool:
        """Delete one file; False when it was already missing. Refuses a path outside the root."""
        path = self._require_inside(path)
        with storage_errors("delete", path):
            if self.is_s3:
                if not self.filesystem.exists(path):
                    return False
                self.filesystem.rm_file(path)
                return True
            try:
                os.remove(path)
            except FileNotFoundError:
                return False
            return True

    def row_count(self, path: str) -> int:
        """The number of rows of the Parquet file ``path``, from its footer."""
        path = self._require_inside(path)
        with storage_errors("read", path), self.filesystem.open(path, "rb") as handle:
            return int(pq.ParquetFile(handle).metadata.num_rows)

    def list_files(self) -> list[CacheFile]:
        """Every complete ``*.parquet`` file under the root, sorted by path; never a file still
        being written."""
        with storage_errors("list", self.root, bucket=self._bucket):
            found: dict[str, dict[str, Any]] = self.filesystem.find(self.root, detail=True)
        files = (self._cache_file(name, info) for name, info in found.items())
        return sorted(
            # A temporary's name ends in ".tmp-<hex>" (storage/naming.py), never in ".parquet".
            (f for f in files if f.path.endswith(".parquet") and self.contains(f.path)),
            key=lambda f: f.path,
        )

    def remove_abandoned_temporaries(self, cutoff: datetime) -> list[str]:
        """Remove the temporaries that no running writer holds, last modified at or before
        ``cutoff``; return their paths. S3 has none: an unfinished upload is no object."""
        if self.is_s3:
            return []
        return remove_abandoned_temporaries(self.root, cutoff)

    def _cache_file(self, name: str, info: dict[str, Any]) -> CacheFile:
        if self.is_s3:
            modified: datetime = info["LastModified"].astimezone(UTC)
            return CacheFile(_S3 + name.removeprefix(_S3), int(info["size"]), modified)
        modified = datetime.fromtimestamp(info["mtime"], tz=UTC)
        return CacheFile(name, int(info["size"]), modified)

    def duckdb_path(self, path: str) -> str:
        """What DuckDB's read_parquet should be given (pass it as a parameter, not spliced)."""
        return self._require_inside(path)

    def register_with_duckdb(self, con: duckdb.DuckDBPyConnection) -> None:
        """Let ``con`` read this cache: on S3 through the s3fs filesystem (no httpfs needed)."""
        if self.is_s3 and not con.filesystem_is_registered(self.filesystem.protocol[0]):
            con.register_filesystem(self.filesystem)
