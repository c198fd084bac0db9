"""How failures become HTTP responses: {"error": message} with the status DESIGN.md names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from catalog import ConnectionNotFoundError, DuplicateConnectionError, TableNotFoundError
from flows.request import InvalidRefreshRequest
from query import QueryError, UnknownTableError
from sources import SourceConfigError
from tasks.connections import InvalidConnectionError

# pydantic error types that mean "this request names nothing valid" rather than "wrong JSON type".
INVALID_REQUEST_ERRORS = {"value_error", "extra_forbidden", "assertion_error"}


def status_for(error: BaseException) -> int:
    if isinstance(
        error, InvalidRefreshRequest | InvalidConnectionError | SourceConfigError | QueryError
    ):
        return 400
    if isinstance(error, ConnectionNotFoundError | TableNotFoundError | UnknownTableError):
        return 404
    if isinstance(error, DuplicateConnectionError):
        return 409
    return 500


def message_for(error: BaseException) -> str:
    return str(error) or type(error).__name__


def validation_status(errors: Sequence[dict[str, Any]]) -> int:
    """400 for a request that breaks a rule or has an unknown field, 422 for wrong JSON types."""
    return 400 if any(e["type"] in INVALID_REQUEST_ERRORS for e in errors) else 422


def validation_message(errors: Sequence[dict[str, Any]]) -> str:
    parts = []
    for error in errors:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)
