"""run_query: one query, its whole JSON result at once (for code and tests; HTTP streams)."""

from __future__ import annotations

import dataclasses

from query.engine import QueryEngine
from query.formats import QueryResult, collect
from query.resolve import FetchTable
from runtime.container import Runtime


def run_query(
    sql: str,
    *,
    runtime: Runtime,
    fetch: FetchTable,
    row_limit: int | None = None,
    timeout_seconds: float | None = None,
    max_staleness_seconds: float | None = None,
) -> QueryResult:
    """Run one read-only query in an engine of its own, within the settings' limits.

    ``row_limit`` replaces the query_row_limit setting; ``execution_time_ms`` covers the whole
    call, a lazy fetch of an uncached table (or the refresh of one older than
    ``max_staleness_seconds``) included.
    """
    with QueryEngine(runtime, fetch) as engine:
        limits = engine.limits
        if row_limit is not None:
            limits = dataclasses.replace(limits, rows=row_limit)
        with engine.start(
            sql, timeout_seconds=timeout_seconds, max_staleness_seconds=max_staleness_seconds
        ) as query:
            return collect(query, limits)
