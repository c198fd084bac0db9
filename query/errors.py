"""What a query can fail with; the webhook maps them to HTTP statuses (400, 400, 404)."""

from __future__ import annotations

from collections.abc import Iterable

from query.names import TableName

EXAMPLE = TableName("demo", "main", "orders")


class QueryError(Exception):
    """The SQL is invalid or failed in DuckDB; the message is DuckDB's own."""


class QueryRejectedError(QueryError):
    """Not one read-only query, or it reaches files, the network or extensions."""


class UnqualifiedTableError(QueryRejectedError):
    """A table named without its connection and schema: the naming rule, with an example.

    The example is a cached table of that name when there is one (`with_example_from`).
    """

    def __init__(self, written: str, table: str, example: TableName = EXAMPLE) -> None:
        super().__init__(
            f"no table {written}: a query names each table as "
            f'"<connection>"."<schema>"."<table>", e.g. {example.sql} '
            "(or a name of its own WITH)"
        )
        self.written, self.table = written, table

    def with_example_from(self, cached: Iterable[TableName]) -> UnqualifiedTableError:
        same_name = (t for t in cached if t.table.casefold() == self.table.casefold())
        return UnqualifiedTableError(self.written, self.table, next(same_name, EXAMPLE))


class UnknownTableError(Exception):
    """A referenced ``"<connection>"."<schema>"."<table>"`` is not in the catalog."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"unknown table {name}: {reason}")
        self.name = name


class QueryTimeoutError(Exception):
    """The query ran past its time limit and was interrupted."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"the query ran longer than its time limit of {seconds:g} s and was stopped "
            "(FRESHCACHE_QUERY_TIMEOUT_SECONDS, or the request's timeout_seconds)"
        )
        self.seconds = seconds


class QueryMemoryError(Exception):
    """The query needed more memory than all queries may share."""

    def __init__(self, memory_mb: int, spill_mb: int, detail: str) -> None:
        super().__init__(
            f"the query needs more memory than the {memory_mb} MB all queries share "
            f"(FRESHCACHE_QUERY_MEMORY_MB), with {spill_mb} MB of disk to spill to "
            f"(FRESHCACHE_QUERY_SPILL_MB): {detail}"
        )


class QueryCancelledError(Exception):
    """The query was cancelled, because its client went away."""
