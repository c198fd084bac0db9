"""How failures become HTTP responses: {"error": message} with its status (README, "Errors")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from catalog import ConnectionNotFoundError, DuplicateConnectionError, TableNotFoundError
from core.connections import InvalidConnectionError
from core.policy import PolicyError
from flows.request import InvalidRefreshRequest
from orchestration.health import PrefectUnavailableError
from query import (
    QueryCancelledError,
    QueryError,
    QueryMemoryError,
    QueryTimeoutError,
    UnknownTableError,
)
from sources import SourceConfigError, plain_message
from webhook.querying import NotAcceptableError, QueryBusyError

# pydantic error types that mean "this request names nothing valid" rather than "wrong JSON type".
INVALID_REQUEST_ERRORS = {"value_error", "extra_forbidden", "assertion_error", "json_invalid"}

# pydantic error types for a body that is valid JSON but no object (null, an array, a number).
_NOT_AN_OBJECT = {"missing", "model_attributes_type", "model_type", "dict_type"}


def status_for(error: BaseException) -> int:
    if isinstance(
        error,
        InvalidRefreshRequest
        | InvalidConnectionError
        | SourceConfigError
        | QueryError
        | PolicyError,
    ):
        return 400
    if isinstance(error, ConnectionNotFoundError | TableNotFoundError | UnknownTableError):
        return 404
    if isinstance(error, NotAcceptableError):
        return 406
    if isinstance(error, DuplicateConnectionError):
        return 409
    if isinstance(error, PrefectUnavailableError | QueryBusyError | QueryCancelledError):
        return 503
    if isinstance(error, QueryTimeoutError):
        return 504
    if isinstance(error, QueryMemoryError):
        return 507
    return 500


def headers_for(error: BaseException) -> list[tuple[bytes, bytes]]:
    """Headers an error response carries besides its content type: Retry-After for a 503."""
    if isinstance(error, QueryBusyError):
        return [(b"retry-after", str(error.retry_after).encode())]
    return []


def message_for(error: BaseException) -> str:
    return str(error) or type(error).__name__


def validation_status(errors: Sequence[dict[str, Any]]) -> int:
    """400 for a request that breaks a rule or has an unknown field, 422 for wrong JSON types."""
    return 400 if any(e["type"] in INVALID_REQUEST_ERRORS for e in errors) else 422


def validation_message(errors: Sequence[dict[str, Any]], body: Any = None) -> str:
    """One line naming each bad field and why; for a body that is no JSON, what and where."""
    parts = []
    for error in errors:
        location = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        if error["type"] == "json_invalid":
            return f"request body is not valid JSON: {_json_problem(error, body)}"
        if error.get("loc") == ("body",) and error["type"] in _NOT_AN_OBJECT:
            return f"request body must be a JSON object, not {_json_kind(body)}"
        message = "unknown field" if error["type"] == "extra_forbidden" else plain_message(error)
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def _json_problem(error: dict[str, Any], document: Any) -> str:
    """What JSON's decoder found wrong, and at which line and column (as json.loads says)."""
    what = error.get("ctx", {}).get("error", "JSON decode error")
    position = error["loc"][-1]
    if not isinstance(document, str) or not isinstance(position, int):
        return str(what)
    line = document.count("\n", 0, position) + 1
    column = position - document.rfind("\n", 0, position)
    return f"{what} at line {line}, column {column}"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a string" if isinstance(value, str) else "an array"
