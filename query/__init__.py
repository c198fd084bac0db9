"""The read side: SQL over the current Parquet cache with DuckDB, lazy caching on first use."""

from query.engine import Limits, QueryEngine, RunningQuery
from query.errors import (
    QueryCancelledError,
    QueryError,
    QueryMemoryError,
    QueryRejectedError,
    QueryTimeoutError,
    UnknownTableError,
)
from query.formats import MEDIA_TYPES, QueryResult, collect, encode
from query.run import run_query
from query.sandbox import lower_this_threads_priority

__all__ = [
    "MEDIA_TYPES",
    "Limits",
    "QueryCancelledError",
    "QueryEngine",
    "QueryError",
    "QueryMemoryError",
    "QueryRejectedError",
    "QueryResult",
    "QueryTimeoutError",
    "RunningQuery",
    "UnknownTableError",
    "collect",
    "encode",
    "lower_this_threads_priority",
    "run_query",
]
