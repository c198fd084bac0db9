"""POST /query: SQL over the cache."""

from __future__ import annotations

from fastapi import APIRouter

from query import QueryResult, run_query
from webhook.models import QueryRequest

router = APIRouter(tags=["query"])


@router.post("/query", response_model=QueryResult)
def post_query(body: QueryRequest) -> QueryResult:
    """Run one read-only query; tables are "<connection>"."<schema>"."<table>"."""
    return run_query(body.sql)
