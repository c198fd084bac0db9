"""What reading a connection's source takes: its parsed config and resolved password."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from catalog import ConnectionRecord
from runtime.container import Runtime
from sources import PasswordRef, SourceConfig, parse_source_config, primary_key

# Turns a config's password reference into the password (tasks pass Prefect's Secret blocks).
ResolvePassword = Callable[[PasswordRef | None], str | None]


@dataclass(frozen=True)
class SourceAccess:
    name: str
    config: SourceConfig
    password: str | None


def source_access(connection: ConnectionRecord, resolve_password: ResolvePassword) -> SourceAccess:
    config = parse_source_config(connection.source_type, connection.config)
    password = resolve_password(getattr(config, "password", None))
    return SourceAccess(connection.name, config, password)


def grace_deadline(runtime: Runtime) -> datetime:
    """When a file replaced now may be deleted."""
    grace = timedelta(seconds=runtime.settings.deletion_grace_seconds)
    return runtime.catalog.clock() + grace


def source_key(access: SourceAccess, schema_name: str, table_name: str) -> list[str]:
    """The table's primary key as its source declares it ([]: none)."""
    return primary_key(
        access.config, access.password, schema_name, table_name, connection_name=access.name
    )
