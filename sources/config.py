"""Connection configs: pydantic models discriminated on `source_type`."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic import field_validator as field_check
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sources.errors import SourceConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PasswordRef(_Strict):
    """Where a password lives: a Prefect Secret block name or an environment variable name."""

    secret: str | None = Field(default=None, min_length=1)
    env: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> PasswordRef:
        if (self.secret is None) == (self.env is None):
            raise ValueError('give exactly one of {"secret": "<block name>"} or {"env": "<VAR>"}')
        return self


TablePattern = Annotated[str, Field(min_length=1, max_length=512)]


class _Scoped(_Strict):
    """Which of the source's tables the connection caches.

    A pattern is ``<schema>.<table>`` in shell-style wildcards (``*``, ``?``, ``[abc]``),
    matched case-sensitively; the first ``.`` separates the schema from the table, and a
    pattern without one names whole schemas (``public`` is ``public.*``). A table is kept when
    `include` is empty or one of its patterns matches, and none of `exclude`'s does.
    """

    include: list[TablePattern] = Field(default_factory=list, max_length=1000)
    exclude: list[TablePattern] = Field(default_factory=list, max_length=1000)

    def covers(self, schema_name: str, table_name: str) -> bool:
        """Whether the table is in the connection's scope."""
        if self.include and not _matches_any(self.include, schema_name, table_name):
            return False
        return not _matches_any(self.exclude, schema_name, table_name)


def _matches_any(patterns: list[str], schema_name: str, table_name: str) -> bool:
    for pattern in patterns:
        schema_pattern, dot, table_pattern = pattern.partition(".")
        if fnmatchcase(schema_name, schema_pattern) and (
            not dot or fnmatchcase(table_name, table_pattern)
        ):
            return True
    return False


class DuckDBConfig(_Scoped):
    source_type: Literal["duckdb"] = "duckdb"
    path: str = Field(min_length=1)


class PostgresConfig(_Scoped):
    source_type: Literal["postgres"] = "postgres"
    host: str = Field(min_length=1)
    port: int = Field(default=5432, ge=1, le=65535)
    user: str = Field(min_length=1)
    database: str = Field(min_length=1)
    password: PasswordRef | None = None
    sslmode: Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] | None = (
        None
    )
    connect_timeout: int = Field(default=10, ge=1, le=600)
    # A source that hangs fails the refresh after this long instead of holding it forever.
    statement_timeout_seconds: int | None = Field(default=None, ge=1, le=86_400)


class SqlAlchemyConfig(_Scoped):
    source_type: Literal["sqlalchemy"] = "sqlalchemy"
    url: str = Field(min_length=1)
    password: PasswordRef | None = None

    @field_check("url")
    @classmethod
    def _no_password_in_url(cls, url: str) -> str:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError("not a SQLAlchemy URL (dialect+driver://user@host/db)") from None
        if parsed.password is not None:
            raise ValueError(
                "the url must not contain a password: remove it and set `password` to "
                '{"secret": "<block name>"} or {"env": "<VAR>"}'
            )
        return url


SourceConfig = Annotated[
    DuckDBConfig | PostgresConfig | SqlAlchemyConfig, Field(discriminator="source_type")
]
_ADAPTER: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)


def parse_source_config(
    source_type: str, config: dict[str, Any], *, connection_name: str | None = None
) -> SourceConfig:
    """Validate `config` for `source_type`; the error names each bad field, never its value."""
    try:
        return _ADAPTER.validate_python({**config, "source_type": source_type})
    except ValidationError as exc:
        problems = "; ".join(
            f"{_field_path(error['loc'], source_type)}: {plain_message(error)}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise SourceConfigError(connection_name, f"invalid config: {problems}") from None


def _field_path(loc: tuple[int | str, ...], source_type: str) -> str:
    """`port` rather than `postgres.port`: the union's tag is not part of the field name."""
    parts = loc[1:] if loc[:1] == (source_type,) else loc
    return ".".join(str(part) for part in parts) or "source_type"


def plain_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's message as a validator wrote it, without pydantic's "Value error, "."""
    if error["type"] == "value_error" and "error" in error.get("ctx", {}):
        return str(error["ctx"]["error"])
    return str(error["msg"])
