"""run_query for tests: one query on a runtime, with lazy fetches as the webhook does."""

from __future__ import annotations

from typing import Any

from query import QueryResult
from query import run_query as run_query_on
from runtime.container import Runtime
from tasks.refresh_table import fetch_for_query


def run_query(runtime: Runtime, sql: str, **limits: Any) -> QueryResult:
    return run_query_on(sql, runtime=runtime, fetch=fetch_for_query, **limits)
