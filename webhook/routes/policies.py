"""Refresh policies: a connection's default and a table's override."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from core.policy import RefreshPolicy
from core.policy_changes import set_connection_policy, set_table_policy
from orchestration.freshness_runs import arm_freshness
from orchestration.secrets import resolve_password
from runtime.container import Runtime
from webhook.models import ConnectionPolicy, ResolvedPolicy, TablePolicyInfo
from webhook.state import AppRuntime

router = APIRouter(tags=["policies"])


# Unset: a policy shows the fields it sets, not every field as null.
@router.get(
    "/connections/{connection_id}/policy",
    response_model=ConnectionPolicy,
    response_model_exclude_unset=True,
)
def get_connection_policy(connection_id: int, runtime: AppRuntime) -> ConnectionPolicy:
    """The connection's default policy, as set ({}: every table refreshes in full on request)."""
    catalog = runtime.catalog
    catalog.get_connection(connection_id)
    by_connection, _ = catalog.policies(connection_id)
    policy = RefreshPolicy.from_json(by_connection.get(connection_id))
    return ConnectionPolicy(connection_id=connection_id, policy=policy)


@router.put(
    "/connections/{connection_id}/policy",
    response_model=ConnectionPolicy,
    response_model_exclude_unset=True,
)
async def put_connection_policy(
    connection_id: int, body: RefreshPolicy, runtime: AppRuntime
) -> ConnectionPolicy:
    """Set the connection's default policy; 400 names a table and column it does not fit."""
    await run_in_threadpool(set_connection_policy, runtime.catalog, connection_id, body)
    await run_in_threadpool(_schedule_freshness, runtime)
    return ConnectionPolicy(connection_id=connection_id, policy=body)


@router.put(
    "/connections/{connection_id}/tables/{schema_name}/{table_name}/policy",
    response_model=TablePolicyInfo,
    response_model_exclude_unset=True,
)
async def put_table_policy(
    connection_id: int,
    schema_name: str,
    table_name: str,
    body: RefreshPolicy,
    runtime: AppRuntime,
) -> TablePolicyInfo:
    """Set a table's policy over its connection's default; 400 names the column that does not
    fit (a merge without primary_key takes the source's key, so the source is asked)."""
    resolved = await run_in_threadpool(
        set_table_policy,
        runtime.catalog,
        resolve_password,
        connection_id,
        schema_name,
        table_name,
        body,
    )
    await run_in_threadpool(_schedule_freshness, runtime)
    fields = asdict(resolved)
    effective = ResolvedPolicy.model_validate({**fields, "primary_key": list(resolved.primary_key)})
    return TablePolicyInfo(
        connection_id=connection_id,
        schema_name=schema_name,
        table_name=table_name,
        policy=body,
        effective=effective,
    )


def _schedule_freshness(runtime: Runtime) -> None:
    """The freshness run the targets need now that a policy changed."""
    arm_freshness(runtime.catalog, runtime.settings.freshness_lead_seconds)
