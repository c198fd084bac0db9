"""Source passwords live in Prefect Secret blocks or environment variables, not the catalog."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Any, cast

from prefect.blocks.system import Secret
from pydantic import SecretStr

from sources import PasswordRef


class SecretResolutionError(RuntimeError):
    """A password reference points at nothing; the message names the reference, not a value."""


def secret_block_name(connection_name: str) -> str:
    """A valid block name (lowercase, digits, dashes) that differs for every connection name."""
    slug = re.sub(r"[^a-z0-9]+", "-", connection_name.lower()).strip("-")[:40] or "connection"
    digest = hashlib.sha256(connection_name.encode()).hexdigest()[:8]
    return f"freshcache-{slug}-{digest}-password"


def store_password(connection_name: str, password: str) -> dict[str, str]:
    """Save a literal password as a Prefect Secret block; returns the reference to keep instead."""
    name = secret_block_name(connection_name)
    Secret(value=SecretStr(password)).save(name, overwrite=True)
    return {"secret": name}


def externalize_password(connection_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Replace a literal `password` in a registration config by a Secret block reference."""
    password = config.get("password")
    if not isinstance(password, str):
        return config
    return {**config, "password": store_password(connection_name, password)}


def resolve_password(ref: PasswordRef | None) -> str | None:
    if ref is None:
        return None
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if value is None:
            raise SecretResolutionError(f"environment variable {ref.env} is not set")
        return value
    assert ref.secret is not None
    try:
        block = cast(Secret[str], Secret.load(ref.secret))
        return str(block.get())
    except ValueError as exc:
        raise SecretResolutionError(f"Prefect Secret block {ref.secret!r} not found") from exc
