"""Qualified table names, as SQL writes them."""

from __future__ import annotations

from dataclasses import dataclass

from core.sql import quote_literal
from sources import quote_ident

__all__ = ["TableName", "quote_literal"]


def fold_identifier(name: str) -> str:
    """How DuckDB compares identifiers: ignoring ASCII case (and only ASCII case)."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class TableName:
    """``"<connection>"."<schema>"."<table>"``: how a query addresses a cached table."""

    connection: str
    schema: str
    table: str

    @property
    def sql(self) -> str:
        return ".".join(quote_ident(p) for p in (self.connection, self.schema, self.table))
