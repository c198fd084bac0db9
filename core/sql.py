"""DuckDB SQL over a table's snapshot: the rows of its files, as queries read them."""

from __future__ import annotations

from collections.abc import Sequence

from sources import quote_ident


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# A column name no source table is expected to have; only our own SQL sees it.
RANK = quote_ident("__freshcache_file_rank")


def snapshot_sql(paths: Sequence[str], merge_key: Sequence[str] = ()) -> str:
    """A SELECT of the rows a snapshot holds: the union of its files (`paths`, base first).

    With a `merge_key`, each key's row from the latest file that has it: the base's rows whose
    key no delta has, plus the latest delta row of every key the deltas have. (An anti-join of
    the base against the deltas' keys costs far less than ranking every row of the table.)
    """
    if not paths:
        raise ValueError("a snapshot has at least one file")
    if not merge_key or len(paths) == 1:
        return f"SELECT * FROM read_parquet([{', '.join(quote_literal(p) for p in paths)}])"
    base, deltas = paths[0], paths[1:]
    ranked = " UNION ALL ".join(
        f"SELECT *, {rank} AS {RANK} FROM read_parquet({quote_literal(path)})"
        for rank, path in enumerate(deltas, start=1)
    )
    key = ", ".join(quote_ident(c) for c in merge_key)
    same_key = " AND ".join(
        f"d.{quote_ident(c)} IS NOT DISTINCT FROM b.{quote_ident(c)}" for c in merge_key
    )
    latest = (
        f"SELECT * EXCLUDE ({RANK}) FROM ({ranked}) "
        f"QUALIFY row_number() OVER (PARTITION BY {key} ORDER BY {RANK} DESC) = 1"
    )
    return (
        f"WITH d AS MATERIALIZED ({latest}) "
        f"SELECT b.* FROM read_parquet({quote_literal(base)}) AS b ANTI JOIN d ON {same_key} "
        "UNION ALL SELECT * FROM d"
    )
