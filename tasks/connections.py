"""Registering and removing connections."""

from __future__ import annotations

import re
from typing import Any

from catalog import ConnectionNotFoundError, ConnectionRecord, DuplicateConnectionError
from runtime.container import get_runtime
from runtime.secrets import externalize_password
from sources import parse_source_config
from tasks.context import grace_deadline

CONNECTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}")


class InvalidConnectionError(ValueError):
    """A registration that cannot be accepted as given."""


def register_connection(name: str, source_type: str, config: dict[str, Any]) -> ConnectionRecord:
    """Validate and store a connection; a literal password goes to a Prefect Secret block."""
    if not CONNECTION_NAME.fullmatch(name):
        raise InvalidConnectionError("a connection name is 1-63 letters, digits, '_' or '-'")
    without_password = {
        k: v for k, v in config.items() if k != "password" or not isinstance(v, str)
    }
    parse_source_config(source_type, without_password)
    catalog = get_runtime().catalog
    # Checked before the password is stored: its Secret block is named after the connection.
    try:
        catalog.get_connection_by_name(name)
    except ConnectionNotFoundError:
        pass
    else:
        raise DuplicateConnectionError(name)
    stored = externalize_password(name, config)
    return catalog.add_connection(name, source_type, stored)


def remove_connection(connection_id: int) -> list[str]:
    """Delete a connection and its tables; their cache files wait out the grace period."""
    runtime = get_runtime()
    return runtime.catalog.delete_connection(connection_id, delete_after=grace_deadline(runtime))
