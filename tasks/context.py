"""What a task needs to reach a connection's source: its parsed config and resolved password."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from catalog import ConnectionRecord
from runtime.container import Runtime
from runtime.secrets import resolve_password
from sources import SourceConfig, parse_source_config


@dataclass(frozen=True)
class SourceAccess:
    name: str
    config: SourceConfig
    password: str | None


def source_access(connection: ConnectionRecord) -> SourceAccess:
    config = parse_source_config(connection.source_type, connection.config)
    password = resolve_password(getattr(config, "password", None))
    return SourceAccess(connection.name, config, password)


def grace_deadline(runtime: Runtime) -> datetime:
    """When a file replaced now may be deleted."""
    grace = timedelta(seconds=runtime.settings.deletion_grace_seconds)
    return runtime.catalog.clock() + grace
