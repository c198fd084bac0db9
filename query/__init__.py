"""The read side: SQL over the current Parquet cache with DuckDB, lazy caching on first use."""

from query.errors import QueryError, QueryRejectedError, UnknownTableError
from query.run import PreparedQuery, QueryResult, prepare_query, run_query

__all__ = [
    "PreparedQuery",
    "QueryError",
    "QueryRejectedError",
    "QueryResult",
    "UnknownTableError",
    "prepare_query",
    "run_query",
]
