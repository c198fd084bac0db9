"""Which cached tables a query reads, found by DuckDB's own parser."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb

from query.errors import QueryError, QueryRejectedError
from query.names import TableName

# DuckDB's own databases: names in them are left to DuckDB, they are no connection of ours.
BUILTIN_CATALOGS = frozenset({"system", "temp", "memory"})


def referenced_tables(con: duckdb.DuckDBPyConnection, sql: str) -> list[TableName]:
    """The ``"<connection>"."<schema>"."<table>"`` names that ``sql`` reads, in order of appearance.

    Rejects anything but exactly one read-only query (SELECT, WITH ... SELECT, VALUES, FROM ...).
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from exc
    if not statements:
        raise QueryError("no SQL statement given")
    if len(statements) > 1:
        raise QueryRejectedError(f"only one statement is allowed, got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise QueryRejectedError(
            f"only read-only queries (SELECT, WITH, VALUES) are allowed, not {kind.name}"
        )
    row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True}
    if tree["error"]:
        raise QueryError(tree.get("error_message", "the query cannot be analysed"))
    names: dict[TableName, None] = {}
    for node in _nodes(tree["statements"]):
        if node.get("type") == "BASE_TABLE" and _is_ours(node["catalog_name"]):
            names[TableName(node["catalog_name"], node["schema_name"], node["table_name"])] = None
    return list(names)


def _is_ours(catalog_name: str) -> bool:
    return bool(catalog_name) and catalog_name not in BUILTIN_CATALOGS


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every object of a parse tree, depth first (iteratively: the tree can be deep)."""
    pending = [tree]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            yield item
            pending.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            pending.extend(reversed(item))
