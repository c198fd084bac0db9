"""What a query reads, found in DuckDB's own parse tree, and what it may not read.

A query may read cached tables (``"<connection>"."<schema>"."<table>"``), its own WITH names and
a few generating table functions (``range``, ``unnest``, ...). Everything else that reaches
outside the query is refused here, before DuckDB runs anything: files (``read_parquet``,
``FROM 'x.csv'``, ``glob``), settings and internal paths (``duckdb_settings()``,
``current_setting``, ``pragma_*``, ``information_schema``, ``SHOW``/``SUMMARIZE``) and SQL given
as a string (``query()``). The DuckDB lock-down (query/sandbox.py) stands behind this check.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb

from query.errors import QueryError, QueryRejectedError, UnqualifiedTableError
from query.names import TableName, fold_identifier
from sources import quote_ident

# DuckDB's own databases: a name in them is never a connection of ours.
BUILTIN_CATALOGS = frozenset({"system", "temp", "memory"})
# Table functions that only generate values; every other one reads files, settings or state.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree"}
)
# Functions (and prefixes) that show settings, paths or catalog internals, or run SQL strings.
DENIED_FUNCTIONS = frozenset(
    {
        "current_setting",
        "getenv",
        "getvariable",
        "current_query",
        "pg_get_viewdef",
        "pg_get_constraintdef",
        "which_secret",
        "query",
        "query_table",
        "json_execute_serialized_sql",
    }
)
# Names of DuckDB's catalog views (duckdb_views, pragma_database_list, sqlite_master,
# pg_settings, ...): refused even where a WITH name would shadow them.
RESERVED_PREFIXES = ("duckdb_", "pragma_", "sqlite_", "pg_", "enable_", "disable_")
# How the parse tree marks a table reference (an expression has a "class" instead).
_ALLOWED_TABLE_REFS = frozenset(
    {"BASE_TABLE", "JOIN", "SUBQUERY", "TABLE_FUNCTION", "EXPRESSION_LIST", "EMPTY", "PIVOT"}
)
_NO_LOCATION = 2**64 - 1


@dataclass(frozen=True)
class Span:
    """Where something is written in the SQL, in UTF-8 bytes (DuckDB counts bytes)."""

    start: int
    length: int


@dataclass(frozen=True)
class TableRef:
    """One mention of a cached table; ``aliased`` when the query names it ``AS`` something."""

    name: TableName
    span: Span
    aliased: bool


@dataclass(frozen=True)
class ColumnRef:
    """A column named through a schema or connection: ``main.orders.id``."""

    parts: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class ParsedQuery:
    sql: str
    tables: list[TableName]  # distinct, in order of appearance
    table_refs: list[TableRef]
    column_refs: list[ColumnRef]


def parse_query(con: duckdb.DuckDBPyConnection, sql: str) -> ParsedQuery:
    """Check that ``sql`` is one read-only query that reads only what it may, and find what."""
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
    # fetchall, not fetchone: a result must be read to its end before the cursor runs more.
    rows = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()
    tree = json.loads(rows[0][0]) if rows else {"error": True}
    if tree["error"]:
        raise QueryError(tree.get("error_message", "the query cannot be analysed"))
    return _Analysis(sql).run(tree["statements"])


class _Analysis:
    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.table_refs: list[TableRef] = []
        self.column_refs: list[ColumnRef] = []

    def run(self, statements: Any) -> ParsedQuery:
        for node, scope in _scoped_nodes(statements):
            self._check(node, scope)
        refs = sorted(self.table_refs, key=lambda ref: ref.span.start)
        tables = list(dict.fromkeys(ref.name for ref in refs))
        return ParsedQuery(self.sql, tables, refs, self.column_refs)

    def _check(self, node: dict[str, Any], scope: frozenset[str]) -> None:
        kind = node.get("type")
        if node.get("class") == "FUNCTION":
            _check_function(node["function_name"])
        elif node.get("class") == "COLUMN_REF":
            parts = tuple(node["column_names"])
            if len(parts) >= 3 and (span := _span(node)) is not None:
                self.column_refs.append(ColumnRef(parts, span))
        elif not _is_table_ref(node):
            return  # another expression, a query node or a part of one
        elif kind not in _ALLOWED_TABLE_REFS:
            raise QueryRejectedError(f"{_describe(kind)} is not allowed in a query")
        elif kind == "TABLE_FUNCTION":
            name = node["function"]["function_name"]
            if name.lower() not in ALLOWED_TABLE_FUNCTIONS:
                raise QueryRejectedError(
                    f"the table function {name}() is not allowed: a query reads cached tables "
                    f"and may generate rows with {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))}"
                )
        elif kind == "BASE_TABLE":
            self._base_table(node, scope)

    def _base_table(self, node: dict[str, Any], scope: frozenset[str]) -> None:
        catalog, schema, table = node["catalog_name"], node["schema_name"], node["table_name"]
        if catalog and fold_identifier(catalog) not in BUILTIN_CATALOGS:
            name = TableName(catalog, schema, table)
            span = _span(node)
            if span is None:
                raise QueryRejectedError(f"{name.sql} cannot be located in the query's text")
            aliased = bool(node["alias"]) or bool(node["column_name_alias"])
            self.table_refs.append(TableRef(name, span, aliased))
            return
        folded = fold_identifier(table)
        with_name = not catalog and not schema and folded in scope
        if with_name and not folded.startswith(RESERVED_PREFIXES):
            return
        written = ".".join(quote_ident(p) for p in (catalog, schema, table) if p)
        raise UnqualifiedTableError(written, table)


def _is_table_ref(node: dict[str, Any]) -> bool:
    """Table references have an alias and a sample, and no expression class or modifiers."""
    return "alias" in node and "sample" in node and "class" not in node and "modifiers" not in node


def _check_function(name: str) -> None:
    folded = name.lower()
    if folded in DENIED_FUNCTIONS or folded.startswith(RESERVED_PREFIXES):
        raise QueryRejectedError(
            f"{name}() is not allowed: settings, paths and catalog internals are not readable"
        )


def _describe(kind: str | None) -> str:
    return "SHOW, DESCRIBE or SUMMARIZE" if kind == "SHOW_REF" else f"a {kind} table reference"


def _span(node: dict[str, Any]) -> Span | None:
    start, length = node.get("query_location", _NO_LOCATION), node.get("query_location_length", 0)
    return None if start == _NO_LOCATION or not length else Span(start, length)


def _scoped_nodes(tree: Any) -> Iterator[tuple[dict[str, Any], frozenset[str]]]:
    """Every object of a parse tree with the WITH names visible there, depth first.

    A WITH name is visible in the rest of its query and in the bodies of the WITH entries after
    it (and in its own body when it is recursive), as in DuckDB. Iterative: the tree can be deep.
    """
    pending: list[tuple[Any, frozenset[str]]] = [(tree, frozenset())]
    while pending:
        item, scope = pending.pop()
        if isinstance(item, list):
            pending.extend((child, scope) for child in reversed(item))
            continue
        if not isinstance(item, dict):
            continue
        yield item, scope
        entries = item.get("cte_map", {}).get("map", []) if "cte_map" in item else []
        visible = scope
        for entry in entries:
            body = entry["value"]["query_node"]
            name = fold_identifier(entry["key"])
            recursive = body.get("type") == "RECURSIVE_CTE_NODE"
            pending.append((entry["value"], visible | {name} if recursive else visible))
            visible = visible | {name}
        pending.extend(
            (child, visible) for key, child in reversed(item.items()) if key != "cte_map"
        )
