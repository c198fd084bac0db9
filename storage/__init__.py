"""Cache storage: versioned Parquet files on a local directory or S3 (fsspec/s3fs)."""

from storage.cache import CacheFile, CacheStorage
from storage.errors import StorageError
from storage.naming import encode_component

__all__ = ["CacheFile", "CacheStorage", "StorageError", "encode_component"]
