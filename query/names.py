"""Qualified table names, as SQL writes them."""

from __future__ import annotations

from dataclasses import dataclass


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class TableName:
    """``"<connection>"."<schema>"."<table>"``: how a query addresses a cached table."""

    connection: str
    schema: str
    table: str

    @property
    def sql(self) -> str:
        return ".".join(quote_identifier(p) for p in (self.connection, self.schema, self.table))
