"""POST /query: SQL over the cache, as JSON, CSV or an Arrow IPC stream."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from query import QueryResult
from query.formats import ARROW, CSV
from webhook.body import require_json_body
from webhook.models import ErrorResponse, QueryRequest
from webhook.querying import QueryCall, QueryResponse, negotiate

router = APIRouter(tags=["query"])


@router.post(
    "/query",
    response_model=QueryResult,
    dependencies=[Depends(require_json_body)],
    responses={
        200: {
            "description": "The result, in the format the Accept header asks for",
            "content": {CSV: {"schema": {"type": "string"}}, ARROW: {"schema": {}}},
        },
        406: {"model": ErrorResponse, "description": "The Accept header names no format"},
        503: {"model": ErrorResponse, "description": "Every query slot stayed busy"},
        504: {"model": ErrorResponse, "description": "The query ran past its time limit"},
        507: {"model": ErrorResponse, "description": "The query needed more memory than allowed"},
    },
)
async def post_query(body: QueryRequest, request: Request) -> Response:
    """Run one read-only query; tables are "<connection>"."<schema>"."<table>".

    The result streams as JSON (the default), CSV (`Accept: text/csv`) or an Arrow IPC stream
    (`Accept: application/vnd.apache.arrow.stream`), within the row and byte limits. With
    `max_staleness_seconds`, the tables it reads that are older are refreshed first.
    """
    media_type = negotiate(request.headers.get("accept"))
    call = QueryCall(body.sql, body.timeout_seconds, media_type, body.max_staleness_seconds)
    return QueryResponse(request.app.state.queries, call)
