"""What a query can fail with; the webhook maps them to HTTP statuses (400, 400, 404)."""

from __future__ import annotations


class QueryError(Exception):
    """The SQL is invalid or failed in DuckDB; the message is DuckDB's own."""


class QueryRejectedError(QueryError):
    """Not one read-only query, or it reaches files, the network or extensions."""


class UnknownTableError(Exception):
    """A referenced ``"<connection>"."<schema>"."<table>"`` is not in the catalog."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"unknown table {name}: {reason}")
        self.name = name
