"""Two ways to run a refresh — the flow directly, or POST /refresh — with one interface."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import ValidationError

from flows.refresh import refresh
from flows.request import RefreshRequest
from webhook.errors import message_for, status_for, validation_message, validation_status


class Executor(Protocol):
    name: str

    def refresh(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]: ...


class FlowExecutor:
    """Validates like the webhook, then calls the `refresh` flow in-process."""

    name = "flow"

    def refresh(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            request = RefreshRequest.model_validate(body)
        except ValidationError as exc:
            errors = exc.errors()
            return validation_status(errors), {"error": validation_message(errors, body)}
        try:
            return 200, refresh(**request.model_dump())
        except Exception as exc:
            return status_for(exc), {"error": message_for(exc)}


class HttpExecutor:
    """Posts to the real app."""

    name = "http"

    def __init__(self, client: Any) -> None:
        self.client = client

    def refresh(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        response = self.client.post("/refresh", json=body)
        return response.status_code, response.json()
