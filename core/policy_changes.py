"""Setting refresh policies: checked against the tables they apply to, then stored.

Whoever sets one schedules the freshness run its targets now need (orchestration).
"""

from __future__ import annotations

from catalog import Catalog
from core.access import ResolvePassword, source_access, source_key
from core.policy import (
    RefreshPolicy,
    TablePolicy,
    check_connection_policy,
    resolve_policy,
)
from sources import schema_from_json


def set_connection_policy(catalog: Catalog, connection_id: int, policy: RefreshPolicy) -> None:
    """Make `policy` the connection's default; every table it applies to must fit it."""
    catalog.get_connection(connection_id)
    _, overrides = catalog.policies(connection_id)
    check_connection_policy(policy, catalog.list_tables(connection_id), overrides)
    catalog.set_connection_policy(connection_id, _stored(policy))


def set_table_policy(
    catalog: Catalog,
    resolve_password: ResolvePassword,
    connection_id: int,
    schema_name: str,
    table_name: str,
    policy: RefreshPolicy,
) -> TablePolicy:
    """Make `policy` the table's override; returns the policy the table now refreshes by.

    A merge policy that names no key takes the source's: the source is asked for it here.
    """
    table = catalog.get_table(connection_id, schema_name, table_name)
    by_connection, _ = catalog.policies(connection_id)
    effective = policy.over(RefreshPolicy.from_json(by_connection.get(connection_id)))
    access = source_access(catalog.get_connection(connection_id), resolve_password)
    resolved = resolve_policy(
        effective,
        f"{schema_name}.{table_name}",
        schema_from_json(table.arrow_schema_json),
        lambda: source_key(access, schema_name, table_name),
    )
    catalog.set_table_policy(connection_id, schema_name, table_name, _stored(policy))
    return resolved


def _stored(policy: RefreshPolicy) -> str | None:
    """What the catalog keeps: the fields set, or nothing for an empty policy."""
    return policy.to_json() if policy.model_fields_set else None
