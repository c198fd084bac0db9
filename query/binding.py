"""Point a query's cached tables at their files, by rewriting their names where written.

Every query runs on its own cursor of one shared DuckDB database, so the tables cannot be
catalog entries of that database (another query may read another snapshot of the same table).
Instead each ``"<connection>"."<schema>"."<table>"`` reference is replaced, at the byte position
DuckDB's parser reports, by a table expression of the snapshot that was live when the query
started: ``read_parquet('<file>') AS "<table>"`` for a table of one file, else the snapshot's
SELECT (core/sql.py) in parentheses. ``orders.id`` still names a column. A column named through
the schema or connection (``main.orders.id``) is rewritten to go through the table's alias. The
rest of the SQL stays exactly as written, and was checked before (query/parsing.py): the rewrite
only adds reads of the files the query is entitled to.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence

from core.sql import snapshot_sql
from query.errors import QueryRejectedError
from query.names import TableName, fold_identifier, quote_literal
from query.parsing import ParsedQuery
from sources import quote_ident

_BARE_IDENTIFIER = re.compile(rb"[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*")
_SPACE = re.compile(rb"\s*")


def snapshot_expression(paths: Sequence[str], merge_key: Sequence[str] = ()) -> str:
    """A table expression of the rows of a snapshot's files (`paths`, base first)."""
    if len(paths) == 1 and not merge_key:
        return f"read_parquet({quote_literal(paths[0])})"
    return f"({snapshot_sql(paths, merge_key)})"


def bind_tables(parsed: ParsedQuery, tables: Mapping[TableName, str]) -> str:
    """``parsed.sql`` reading the table expression ``tables[name]`` (`snapshot_expression`)
    wherever it reads ``name``."""
    require_distinct_in_duckdb(tables)
    aliases = _aliases(parsed)
    edits: list[tuple[int, int, bytes]] = []
    text = parsed.sql.encode()
    for ref in parsed.table_refs:
        start = ref.span.start
        written = _name_length(text[start : start + ref.span.length], ref.name)
        if written is None:
            raise QueryRejectedError(f"{ref.name.sql} cannot be located in the query's text")
        replacement = tables[ref.name]
        if not ref.aliased:
            replacement += f" AS {quote_ident(aliases[ref.name])}"
        edits.append((start, start + written, replacement.encode()))
    unaliased = [ref.name for ref in parsed.table_refs if not ref.aliased]
    for column in parsed.column_refs:
        through = _through_table(column.parts, unaliased)
        if through is not None:
            table, parts = through
            replacement = ".".join(quote_ident(p) for p in (aliases[table], *parts))
            start = column.span.start
            edits.append((start, start + column.span.length, replacement.encode()))
    return _apply(text, edits).decode()


def require_distinct_in_duckdb(names: Iterable[TableName]) -> None:
    """DuckDB matches identifiers ignoring ASCII case: names differing only so cannot coexist."""
    seen: dict[tuple[str, ...], tuple[str, ...]] = {}
    for name in names:
        parts = (name.connection, name.schema, name.table)
        for depth in range(1, 4):
            spelled = parts[:depth]
            other = seen.setdefault(_folded(spelled), spelled)
            if other != spelled:
                shown = [".".join(quote_ident(p) for p in n) for n in (other, spelled)]
                raise QueryRejectedError(
                    f"{shown[0]} and {shown[1]} differ only in case, which DuckDB does not "
                    "tell apart: query them in separate queries"
                )


def _aliases(parsed: ParsedQuery) -> dict[TableName, str]:
    """The name each table gets where the query gives it none: its table name, unless two
    such tables share it."""
    by_table: dict[str, set[TableName]] = {}
    for ref in parsed.table_refs:
        if not ref.aliased:
            by_table.setdefault(fold_identifier(ref.name.table), set()).add(ref.name)
    return {
        name: name.table
        if len(by_table.get(fold_identifier(name.table), ())) == 1
        else f"__freshcache_{n}"
        for n, name in enumerate(parsed.tables)
    }


def _through_table(
    parts: tuple[str, ...], tables: list[TableName]
) -> tuple[TableName, tuple[str, ...]] | None:
    """The one table that ``<connection>.<schema>.<table>.<column>`` or
    ``<schema>.<table>.<column>`` names, and the parts after it."""
    matches = {}
    for table in tables:
        full = (table.connection, table.schema, table.table)
        if len(parts) >= 4 and _folded(parts[:3]) == _folded(full):
            matches[table] = parts[3:]
        elif _folded(parts[:2]) == _folded(full[1:]):
            matches[table] = parts[2:]
    return next(iter(matches.items())) if len(matches) == 1 else None


def _name_length(text: bytes, name: TableName) -> int | None:
    """How many bytes of ``text`` spell ``name`` (three identifiers joined by dots), if it does."""
    position = 0
    for index, part in enumerate((name.connection, name.schema, name.table)):
        if index:
            position = _SPACE.match(text, position).end()  # type: ignore[union-attr]
            if text[position : position + 1] != b".":
                return None
            position = _SPACE.match(text, position + 1).end()  # type: ignore[union-attr]
        if text[position : position + 1] == b'"':
            end = _closing_quote(text, position + 1)
            if end is None or text[position + 1 : end].replace(b'""', b'"') != part.encode():
                return None
            position = end + 1
        else:
            match = _BARE_IDENTIFIER.match(text, position)
            if match is None or fold_identifier(match.group().decode()) != fold_identifier(part):
                return None
            position = match.end()
    return position


def _closing_quote(text: bytes, position: int) -> int | None:
    while (end := text.find(b'"', position)) >= 0:
        if text[end + 1 : end + 2] != b'"':
            return end
        position = end + 2
    return None


def _apply(text: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    edits.sort()
    for (_, end, _), (start, _, _) in itertools.pairwise(edits):
        if start < end:
            raise QueryRejectedError("the cached tables of this query cannot be told apart")
    for start, end, replacement in reversed(edits):
        text = text[:start] + replacement + text[end:]
    return text


def _folded(parts: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(fold_identifier(p) for p in parts)
