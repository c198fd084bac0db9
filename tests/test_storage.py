"""CacheStorage on a temporary directory and on a moto S3 bucket (the `cache_storage` fixture)."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from storage import CacheStorage, StorageError, encode_component
from storage.naming import is_temporary, temporary_name

HOSTILE_NAMES = [
    "..",
    ".",
    "../../etc",
    "a/b",
    "a\\b",
    "%2e%2e",
    "%2E%2E",
    "%",
    "~",
    "'",
    '"',
    "`x`",
    "a\0b",
    "\0",
    "x" * 300,
    "x" * 299 + "y",
    "é" * 300,
    "Ünïcödé 表 🦆",
    "Users",
    "users",
    "USERS",
    "",
    " ",
    "a b",
    "-",
    "_",
    "*",
    "?",
    "[abc]",
    "$HOME",
    "con",
    "\n",
]
VERSION = re.compile(r"^\d{8}T\d{15}Z-[0-9a-f]{16}\.parquet$")


def _components(storage: CacheStorage, path: str) -> list[str]:
    assert path.startswith(storage.root + "/")
    return path[len(storage.root) + 1 :].split("/")


def _read(storage: CacheStorage, path: str) -> pa.Table:
    with storage.filesystem.open(path, "rb") as handle:
        return pq.read_table(handle)


def _table(rows: int) -> pa.Table:
    ids = pa.array(range(rows), pa.int64())
    return pa.table(
        {
            "id": ids,
            "name": pa.array([f"name-{i % 1000}" for i in range(rows)]),
            "amount": pc.divide(pc.cast(ids, pa.float64()), 7.0),
            "flag": pa.array([i % 3 == 0 if i % 5 else None for i in range(rows)], pa.bool_()),
        }
    )


def _reader(table: pa.Table, batch_rows: int = 10_000) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(batch_rows))


def _failing_reader(table: pa.Table, good_batches: int) -> pa.RecordBatchReader:
    def batches() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(1_000)[:good_batches]
        raise RuntimeError("source connection lost")

    return pa.RecordBatchReader.from_batches(table.schema, batches())


def _write_small(storage: CacheStorage, path: str, rows: int = 10) -> None:
    assert storage.write_parquet(path, _reader(_table(rows))) == rows


# --- paths -------------------------------------------------------------------------------------


def test_version_paths_are_unique_and_sort_by_time(cache_storage: CacheStorage) -> None:
    paths = [cache_storage.new_version_path(1, "s", "t") for _ in range(5_000)]
    assert len(set(paths)) == len(paths)
    assert sorted(paths) == paths


def test_version_paths_are_unique_across_threads(cache_storage: CacheStorage) -> None:
    results: list[list[str]] = [[] for _ in range(8)]

    def work(out: list[str]) -> None:
        out.extend(cache_storage.new_version_path(7, "s", "t") for _ in range(1_000))

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [path for out in results for path in out]
    assert len(set(every)) == 8_000
    assert all(out == sorted(out) for out in results)


def test_path_structure(cache_storage: CacheStorage) -> None:
    path = cache_storage.new_version_path(42, "public", "orders")
    connection, schema, table, version = _components(cache_storage, path)
    assert (connection, schema, table) == ("42", "public", "orders")
    assert VERSION.match(version), version
    assert cache_storage.contains(path)


@pytest.mark.parametrize("bad", [-1, True, "1", 1.0])
def test_connection_id_must_be_a_non_negative_int(cache_storage: CacheStorage, bad: Any) -> None:
    with pytest.raises(ValueError, match="connection_id"):
        cache_storage.new_version_path(bad, "s", "t")


def test_hostile_names_stay_under_root_and_distinct(cache_storage: CacheStorage) -> None:
    seen: dict[str, tuple[str, str]] = {}
    for schema in HOSTILE_NAMES:
        for table in HOSTILE_NAMES:
            path = cache_storage.new_version_path(3, schema, table)
            parts = _components(cache_storage, path)
            assert len(parts) == 4
            for part in parts:
                assert part not in ("", ".", "..")
                assert "\0" not in part and "\\" not in part
                assert len(part.encode()) < 200
            assert cache_storage.contains(path)
            directory = "/".join(parts[:3]).casefold()  # must not collide even case-insensitively
            assert directory not in seen, (seen[directory], (schema, table))
            seen[directory] = (schema, table)


def test_hostile_names_on_the_real_backend(cache_storage: CacheStorage) -> None:
    written = []
    for name in HOSTILE_NAMES:
        path = cache_storage.new_version_path(1, name, name)
        _write_small(cache_storage, path)
        written.append(path)
    listed = [f.path for f in cache_storage.list_files()]
    assert sorted(listed) == sorted(written)
    if not cache_storage.is_s3:
        for path in written:
            assert os.path.realpath(path).startswith(cache_storage.root + os.sep)


def test_encoding_is_injective_over_random_hostile_names() -> None:
    import random

    rng = random.Random(1234)
    alphabet = "aAbB09._-~%/\\\0 '\"éÉß表🦆\ud800"
    names = {""} | {"x" * n for n in range(1, 400, 7)}
    while len(names) < 30_000:
        length = rng.choice([1, 2, 3, 5, 8, 40, 130, 300])
        names.add("".join(rng.choice(alphabet) for _ in range(length)))
    encoded: dict[str, str] = {}
    for name in names:
        component = encode_component(name)
        assert re.fullmatch(r"[a-z0-9_%~\-A-F]+", component), component
        assert component not in (".", "..") and len(component) <= 120
        key = component.casefold()
        assert key not in encoded, (encoded[key], name)
        encoded[key] = name


def test_encoding_keeps_plain_names_readable() -> None:
    assert encode_component("orders_2024-q1") == "orders_2024-q1"
    assert encode_component("Orders") == "%4Frders"
    assert encode_component("..") == "%2E%2E"
    assert encode_component("%2e") == "%252e"
    long = encode_component("x" * 300)
    assert long.startswith("x" * 48 + "~") and len(long) == 48 + 1 + 64


# --- writing -----------------------------------------------------------------------------------


def test_write_one_million_rows_and_read_back(cache_storage: CacheStorage) -> None:
    table = _table(1_000_000)
    path = cache_storage.new_version_path(1, "public", "big")
    assert cache_storage.write_parquet(path, _reader(table)) == 1_000_000
    assert _read(cache_storage, path).equals(table)
    assert cache_storage.row_count(path) == 1_000_000
    with cache_storage.filesystem.open(path, "rb") as handle:
        metadata = pq.ParquetFile(handle).metadata
    groups = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert groups == [524_288, 475_712]  # batches of 10k rows are merged into large groups
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_empty_reader_writes_a_valid_empty_file(cache_storage: CacheStorage) -> None:
    table = _table(0)
    path = cache_storage.new_version_path(1, "s", "empty")
    assert cache_storage.write_parquet(path, _reader(table)) == 0
    assert _read(cache_storage, path).schema.equals(table.schema)
    assert cache_storage.row_count(path) == 0


def test_failing_reader_leaves_no_file(cache_storage: CacheStorage) -> None:
    path = cache_storage.new_version_path(1, "s", "t")
    with pytest.raises(RuntimeError, match="source connection lost"):
        cache_storage.write_parquet(path, _failing_reader(_table(5_000), good_batches=3))
    assert not cache_storage.filesystem.exists(path)
    assert cache_storage.list_files() == []


def test_reader_errors_pass_through_unchanged(cache_storage: CacheStorage) -> None:
    """A source's own OSError (here a dropped connection) is not mistaken for a storage error."""
    table = _table(3_000)

    def batches() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(1_000)[:2]
        raise ConnectionResetError("peer went away")

    path = cache_storage.new_version_path(1, "s", "t")
    reader = pa.RecordBatchReader.from_batches(table.schema, batches())
    with pytest.raises(ConnectionResetError, match="peer went away"):
        cache_storage.write_parquet(path, reader)
    assert not cache_storage.filesystem.exists(path)


def test_failing_writer_block_leaves_no_file(cache_storage: CacheStorage) -> None:
    path = cache_storage.new_version_path(1, "s", "t")
    with pytest.raises(KeyError), cache_storage.open_write(path) as sink:
        sink.write(b"partial")
        raise KeyError("boom")
    assert not cache_storage.filesystem.exists(path)


def test_s3_failure_after_parts_were_uploaded_aborts_the_multipart_upload(
    s3_cache_url: str, s3_endpoint_url: str, s3_client: Any, s3_bucket: str
) -> None:
    part = 5 * 1024 * 1024  # the S3 minimum part size
    storage = CacheStorage(
        s3_cache_url, s3_endpoint_url=s3_endpoint_url, storage_options={"default_block_size": part}
    )
    path = storage.new_version_path(1, "s", "t")
    with pytest.raises(RuntimeError, match="late failure"), storage.open_write(path) as sink:
        for _ in range(3):
            sink.write(os.urandom(part))
        uploads = s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
        assert len(uploads) == 1  # parts are streamed, not buffered whole
        # Uploaded parts are no object: nothing partial can be seen, listed or swept.
        assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
        assert storage.list_files() == [] and not storage.filesystem.exists(path)
        raise RuntimeError("late failure")
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert s3_client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0
    assert not storage.filesystem.exists(path)


def test_s3_large_write_completes_through_multipart_upload(
    s3_cache_url: str, s3_endpoint_url: str, s3_client: Any, s3_bucket: str
) -> None:
    part = 5 * 1024 * 1024
    storage = CacheStorage(
        s3_cache_url, s3_endpoint_url=s3_endpoint_url, storage_options={"default_block_size": part}
    )
    path = storage.new_version_path(1, "s", "t")
    payload = os.urandom(part) * 3
    with storage.open_write(path) as sink:
        sink.write(payload)
    assert s3_client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    with storage.filesystem.open(path, "rb") as handle:
        assert handle.read() == payload


def _everything(storage: CacheStorage) -> list[str]:
    """Every file or object under the root, whatever its name."""
    found: list[str] = storage.filesystem.find(storage.root)
    return sorted(found)


def _copy_to(con: duckdb.DuckDBPyConnection, target: str, rows: int) -> None:
    quoted = target.replace("'", "''")  # COPY takes no parameter for its target
    con.execute(f"COPY (SELECT range AS id FROM range({rows})) TO '{quoted}' (FORMAT parquet)")


def test_duckdb_copy_through_writing_appears_only_when_complete(
    cache_storage: CacheStorage,
) -> None:
    path = cache_storage.new_version_path(1, "s", "t")
    con = duckdb.connect()
    cache_storage.register_with_duckdb(con)
    with cache_storage.writing(path) as target:
        _copy_to(con, target, 1_000)
        # Locally the file gets its name when the block ends. On S3 it appeared when DuckDB
        # completed the upload (a pending one is invisible: see the multipart tests below).
        assert cache_storage.filesystem.exists(path) is cache_storage.is_s3
        assert len(cache_storage.list_files()) == cache_storage.is_s3
        # DuckDB replaced the temporary with a file of its own: still never swept.
        later = datetime.now(UTC) + timedelta(hours=1)
        assert cache_storage.remove_abandoned_temporaries(later) == []
    assert [f.path for f in cache_storage.list_files()] == [path]
    assert [p.rsplit("/", 1)[-1] for p in _everything(cache_storage)] == [path.rsplit("/", 1)[-1]]
    assert _read(cache_storage, path).num_rows == 1_000


def test_a_failed_write_through_writing_leaves_nothing(cache_storage: CacheStorage) -> None:
    path = cache_storage.new_version_path(1, "s", "t")
    con = duckdb.connect()
    cache_storage.register_with_duckdb(con)
    with pytest.raises(KeyError), cache_storage.writing(path) as target:
        _copy_to(con, target, 1_000)  # complete, but the block fails after it
        raise KeyError("boom")
    assert _everything(cache_storage) == []


def test_a_local_write_goes_to_a_held_temporary_next_to_its_path(tmp_path: Path) -> None:
    storage = CacheStorage(str(tmp_path / "cache"))
    path = storage.new_version_path(1, "s", "t")
    with storage.open_write(path) as sink:
        sink.write(b"partial")
        (temporary,) = _everything(storage)
        assert is_temporary(temporary) and temporary.startswith(path + ".tmp-")
        assert storage.list_files() == []
        # A sweep with any cutoff leaves it: its writer is at work.
        assert storage.remove_abandoned_temporaries(datetime.now(UTC) + timedelta(hours=1)) == []
        assert os.path.exists(temporary)
    assert _everything(storage) == [path]


def test_abandoned_temporaries_are_removed_once_old_enough(tmp_path: Path) -> None:
    storage = CacheStorage(str(tmp_path / "cache"))
    abandoned = temporary_name(storage.new_version_path(1, "s", "t"))
    os.makedirs(os.path.dirname(abandoned))
    Path(abandoned).write_bytes(b"PAR1 and no writer any more")
    modified = datetime.fromtimestamp(os.stat(abandoned).st_mtime, tz=UTC)
    assert storage.remove_abandoned_temporaries(modified - timedelta(seconds=1)) == []
    assert storage.remove_abandoned_temporaries(modified) == [abandoned]
    assert _everything(storage) == []


def test_temporary_names_are_never_cache_file_names(cache_storage: CacheStorage) -> None:
    path = cache_storage.new_version_path(1, "a.tmp-0123456789abcdef", "t.tmp-0123456789abcdef")
    assert not is_temporary(path) and VERSION.match(path.rsplit("/", 1)[-1])
    assert is_temporary(temporary_name(path))


# --- delete, exists, contains, listing ---------------------------------------------------------


def test_delete(cache_storage: CacheStorage) -> None:
    path = cache_storage.new_version_path(1, "s", "t")
    _write_small(cache_storage, path)
    assert cache_storage.filesystem.exists(path)
    assert cache_storage.delete(path) is True
    assert not cache_storage.filesystem.exists(path)
    assert cache_storage.delete(path) is False  # already missing: not an error
    with pytest.raises(StorageError, match=r"^cannot read "):
        cache_storage.row_count(path)


def _outside_paths(storage: CacheStorage) -> list[str]:
    root = storage.root
    outside = [
        root,
        root + "/../escape.parquet",
        root + "/1/../../escape.parquet",
        root + "-sibling/x.parquet",
        "relative/x.parquet" if storage.is_s3 else "/etc/passwd",
    ]
    if storage.is_s3:
        outside += [root.removeprefix("s3://") + "/1/x.parquet", root + "//x.parquet"]
    return outside


def test_delete_refuses_paths_outside_the_root(cache_storage: CacheStorage) -> None:
    for path in _outside_paths(cache_storage):
        assert not cache_storage.contains(path), path
        with pytest.raises(ValueError, match="outside the cache root"):
            cache_storage.delete(path)


def test_contains(cache_storage: CacheStorage) -> None:
    assert cache_storage.contains(cache_storage.root + "/1/s/t/v.parquet")
    assert cache_storage.contains(cache_storage.new_version_path(1, "..", ".."))


def test_list_files_with_size_and_mtime(cache_storage: CacheStorage) -> None:
    assert cache_storage.list_files() == []
    before = datetime.now(UTC) - timedelta(seconds=2)
    paths = [cache_storage.new_version_path(i, "s", f"t{i}") for i in range(3)]
    for rows, path in enumerate(paths, start=1):
        _write_small(cache_storage, path, rows=rows * 100)
    with cache_storage.open_write(cache_storage.root + "/notes.txt") as sink:
        sink.write(b"not a cache file")
    after = datetime.now(UTC) + timedelta(seconds=2)
    files = cache_storage.list_files()
    assert [f.path for f in files] == sorted(paths)
    for file in files:
        assert file.size == cache_storage.filesystem.size(file.path) > 0
        assert file.modified.tzinfo is not None and file.modified.utcoffset() == timedelta(0)
        assert before <= file.modified <= after


# --- DuckDB ------------------------------------------------------------------------------------


def test_duckdb_reads_a_written_file(cache_storage: CacheStorage) -> None:
    path = cache_storage.new_version_path(1, "Ünïcödé 表 %2e", "../Orders")
    assert cache_storage.write_parquet(path, _reader(_table(12_345))) == 12_345
    con = duckdb.connect()
    cache_storage.register_with_duckdb(con)
    cache_storage.register_with_duckdb(con)  # idempotent
    query = "SELECT count(*), sum(id) FROM read_parquet(?)"
    result = con.execute(query, [cache_storage.duckdb_path(path)]).fetchone()
    assert result == (12_345, sum(range(12_345)))


# --- construction and errors -------------------------------------------------------------------


def test_local_root_is_created_and_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    storage = CacheStorage("nested/cache")
    assert storage.root == str(tmp_path.resolve() / "nested" / "cache")
    assert os.path.isdir(storage.root) and not storage.is_s3


def test_s3_root_is_normalized(s3_endpoint_url: str, s3_bucket: str) -> None:
    storage = CacheStorage(f"s3://{s3_bucket}//a/b/", s3_endpoint_url=s3_endpoint_url)
    assert storage.root == f"s3://{s3_bucket}/a/b" and storage.is_s3
    assert CacheStorage(f"s3://{s3_bucket}", s3_endpoint_url=s3_endpoint_url).root == (
        f"s3://{s3_bucket}"
    )


@pytest.mark.parametrize("url", ["s3://", "s3:///prefix", "gs://bucket/x", "s3://b/../x"])
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        CacheStorage(url)


def test_missing_bucket_is_a_clear_storage_error(s3_endpoint_url: str) -> None:
    storage = CacheStorage("s3://no-such-bucket-here/cache", s3_endpoint_url=s3_endpoint_url)
    path = storage.new_version_path(1, "s", "t")
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist"):
        _write_small(storage, path)


@pytest.mark.usefixtures("s3_endpoint_url")  # for its dummy credentials
def test_unreachable_endpoint_is_a_storage_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    options = {"config_kwargs": {"retries": {"max_attempts": 1}}}
    storage = CacheStorage(
        "s3://some-bucket/cache",
        s3_endpoint_url=f"http://127.0.0.1:{port}",
        storage_options=options,
    )
    with pytest.raises(StorageError, match="Could not connect"):
        storage.list_files()


def test_local_root_that_is_a_file_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="cannot create the cache directory"):
        CacheStorage(str(tmp_path / "file" / "cache"))


def test_disk_full_is_a_storage_error_and_leaves_no_file(tmp_path: Path) -> None:
    from tests.hostile_support import tmpfs

    with tmpfs(tmp_path / "cache", "256k"):
        storage = CacheStorage(str(tmp_path / "cache"))
        path = storage.new_version_path(1, "s", "t")
        with pytest.raises(StorageError, match="no space left on device"):
            storage.write_parquet(path, _reader(_table(100_000)))
        assert _everything(storage) == []


def test_read_only_directory_is_a_storage_error(tmp_path: Path) -> None:
    from tests.hostile_support import freezable_directory

    with freezable_directory(tmp_path / "cache") as freeze:
        storage = CacheStorage(str(tmp_path / "cache"))
        written = storage.new_version_path(1, "s", "t")
        _write_small(storage, written)
        cause = freeze(True)
        # A new table's directory cannot be made; an existing one takes no new file.
        for table in ("new", "t"):
            path = storage.new_version_path(1, "s", table)
            with pytest.raises(StorageError, match=f"^cannot create {re.escape(path)}: {cause}$"):
                _write_small(storage, path)
        assert _everything(storage) == [written]
