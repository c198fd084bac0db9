"""The refresh request (the body of POST /refresh) and its validation rules."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from sources import plain_message


class RefreshKind(StrEnum):
    SCHEMA_ALL = "schema_all"
    SCHEMA_CONNECTION = "schema_connection"
    DATA_TABLE = "data_table"
    DATA_CONNECTION = "data_connection"


class InvalidRefreshRequest(ValueError):
    """A combination of fields that names no refresh (HTTP 400)."""


class RefreshRequest(BaseModel):
    """What to refresh; unknown fields are rejected so a typo never widens a refresh."""

    model_config = ConfigDict(extra="forbid", strict=True)

    connection_id: int | None = None
    schema_name: str | None = None
    table_name: str | None = None
    data: bool = False
    dry_run: bool = False
    cached_only: bool = False
    full: bool = False

    @classmethod
    def checked(cls, **fields: Any) -> RefreshRequest:
        """The request of these fields; what is wrong with them raises InvalidRefreshRequest,
        in one line, rather than pydantic's ValidationError around it."""
        try:
            return cls(**fields)
        except ValidationError as error:
            problems = [
                f"{'.'.join(map(str, e['loc']))}: {plain_message(e)}"
                if e["loc"]
                else plain_message(e)
                for e in error.errors()
            ]
            raise InvalidRefreshRequest("; ".join(problems)) from None

    @model_validator(mode="after")
    def _names_a_refresh(self) -> RefreshRequest:
        self.kind()
        return self

    def kind(self) -> RefreshKind:
        """The refresh this request names; raises InvalidRefreshRequest for the rest."""
        if self.schema_name is not None and self.connection_id is None:
            raise InvalidRefreshRequest("schema_name requires connection_id")
        if self.table_name is not None and self.schema_name is None:
            raise InvalidRefreshRequest("table_name requires schema_name")
        if self.data and self.connection_id is None:
            raise InvalidRefreshRequest(
                "data: true requires connection_id (no data refresh across all connections)"
            )
        if self.schema_name is not None and self.table_name is None:
            raise InvalidRefreshRequest(
                "schema_name without table_name is not supported (no schema-level refresh)"
            )
        if self.table_name is not None and not self.data:
            raise InvalidRefreshRequest(
                "a table refresh needs data: true (schema refresh works per connection)"
            )
        if self.dry_run and self.data:
            raise InvalidRefreshRequest("dry_run applies to schema refreshes only")
        if self.full and not self.data:
            raise InvalidRefreshRequest("full applies to data refreshes only")
        if self.cached_only and (not self.data or self.table_name is not None):
            raise InvalidRefreshRequest("cached_only applies to connection data refreshes only")
        if self.table_name is not None:
            return RefreshKind.DATA_TABLE
        if self.data:
            return RefreshKind.DATA_CONNECTION
        if self.connection_id is not None:
            return RefreshKind.SCHEMA_CONNECTION
        return RefreshKind.SCHEMA_ALL
