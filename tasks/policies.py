"""Setting refresh policies: checked against the tables they apply to, then stored."""

from __future__ import annotations

from core.access import source_access, source_key
from core.policy import (
    RefreshPolicy,
    TablePolicy,
    check_connection_policy,
    resolve_policy,
)
from orchestration.freshness_runs import arm_freshness
from orchestration.secrets import resolve_password
from runtime.container import Runtime
from sources import schema_from_json


def set_connection_policy(runtime: Runtime, connection_id: int, policy: RefreshPolicy) -> None:
    """Make `policy` the connection's default; every table it applies to must fit it.

    The freshness run the targets now need is scheduled.
    """
    catalog = runtime.catalog
    catalog.get_connection(connection_id)
    _, overrides = catalog.policies(connection_id)
    check_connection_policy(policy, catalog.list_tables(connection_id), overrides)
    catalog.set_connection_policy(connection_id, _stored(policy))
    arm_freshness(catalog, runtime.settings.freshness_lead_seconds)


def set_table_policy(
    runtime: Runtime, connection_id: int, schema_name: str, table_name: str, policy: RefreshPolicy
) -> TablePolicy:
    """Make `policy` the table's override; returns the policy the table now refreshes by.

    A merge policy that names no key takes the source's: the source is asked for it here.
    The freshness run the targets now need is scheduled.
    """
    catalog = runtime.catalog
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
    arm_freshness(catalog, runtime.settings.freshness_lead_seconds)
    return resolved


def _stored(policy: RefreshPolicy) -> str | None:
    """What the catalog keeps: the fields set, or nothing for an empty policy."""
    return policy.to_json() if policy.model_fields_set else None
