"""Registering, changing and removing connections, and discovering their tables."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from catalog import Catalog, ConnectionNotFoundError, ConnectionRecord, DuplicateConnectionError
from core.access import ResolvePassword, grace_deadline, source_access
from core.results import ConnectionSchemaChanges
from core.schema_sync import sync_connection_schema
from runtime.container import Runtime
from sources import parse_source_config

CONNECTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")

# Stores a registration's literal password elsewhere (the webhook passes Prefect's Secret
# blocks): given the connection's name and config, returns the config to keep instead.
StorePassword = Callable[[str, dict[str, Any]], dict[str, Any]]


class InvalidConnectionError(ValueError):
    """A registration or change that cannot be accepted as given."""


def register_connection(
    catalog: Catalog,
    store_password: StorePassword,
    name: str,
    source_type: str,
    config: dict[str, Any],
) -> ConnectionRecord:
    """Validate and store a connection; a literal password goes to `store_password`."""
    stored = _accepted(catalog, store_password, name, source_type, config, new_name=True)
    return catalog.add_connection(name, source_type, stored)


def update_connection(
    catalog: Catalog,
    store_password: StorePassword,
    connection_id: int,
    *,
    name: str | None = None,
    config: dict[str, Any] | None = None,
) -> ConnectionRecord:
    """Rename a connection and/or change its config, validated as a registration is.

    Each key of `config` replaces the stored one, and a None value removes it; the source type
    stays. Nothing is stored unless the whole result is valid. Its tables are left as they
    are: re-discover them (`discover_tables`) to apply the change.
    """
    current = catalog.get_connection(connection_id)
    new_name = current.name if name is None else name
    changed = {**current.config, **(config or {})}
    merged = {key: value for key, value in changed.items() if value is not None}
    stored = _accepted(
        catalog,
        store_password,
        new_name,
        current.source_type,
        merged,
        new_name=new_name != current.name,
    )
    return catalog.update_connection(connection_id, new_name, stored)


def _accepted(
    catalog: Catalog,
    store_password: StorePassword,
    name: str,
    source_type: str,
    config: dict[str, Any],
    *,
    new_name: bool,
) -> dict[str, Any]:
    """The config to store for a valid connection, its literal password stored apart.
    Raises for an invalid name or config, or a name already taken."""
    if not CONNECTION_NAME.fullmatch(name):
        raise InvalidConnectionError("a connection name is 1-63 letters, digits, '_' or '-'")
    without_password = {
        k: v for k, v in config.items() if k != "password" or not isinstance(v, str)
    }
    parse_source_config(source_type, without_password, connection_name=name)
    if new_name:
        # Checked before the password is stored: where it goes is named after the connection.
        try:
            catalog.get_connection_by_name(name)
        except ConnectionNotFoundError:
            pass
        else:
            raise DuplicateConnectionError(name)
    return store_password(name, config)


@dataclass(frozen=True)
class Discovery:
    """The outcome of discovering a connection's tables: its changes, or why it failed."""

    status: Literal["success", "failed"]
    changes: ConnectionSchemaChanges | None = None
    error: str | None = None

    @property
    def error_line(self) -> str:
        """The error on one line, for a terminal (drivers' messages can span several)."""
        return " ".join((self.error or "").split())


def discover_tables(
    runtime: Runtime, resolve_password: ResolvePassword, connection_id: int
) -> Discovery:
    """Discover the connection's tables and apply them to the catalog, as a schema refresh
    does (tables gone or out of scope are removed, their files deleted after the grace).

    Not a Prefect run: a registration whose source does not answer is an answer to give the
    user, not a failed run with its tracebacks in the terminal.
    """
    try:
        access = source_access(runtime.catalog.get_connection(connection_id), resolve_password)
        changes = sync_connection_schema(runtime, access, connection_id)
    except Exception as exc:
        return Discovery("failed", error=str(exc) or type(exc).__name__)
    return Discovery("success", changes=changes)


def remove_connection(runtime: Runtime, connection_id: int) -> list[str]:
    """Delete a connection and its tables; their cache files wait out the grace period."""
    return runtime.catalog.delete_connection(connection_id, delete_after=grace_deadline(runtime))
