"""The Prefect UI explains the flows: every parameter of every flow has a type the run form
renders as an input and a description; the deployments and the artifacts describe themselves."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

import flows
from flows.cleanup import cleanup
from flows.refresh import refresh
from tests.source_dbs import create_numbered_table
from tests.world import make_world


def every_flow() -> list[Flow[Any, Any]]:
    """The flows defined in the modules of flows/."""
    found = []
    for module_info in pkgutil.iter_modules(flows.__path__):
        module = importlib.import_module(f"flows.{module_info.name}")
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, Flow) and value.fn.__module__ == module.__name__
        ]
    return found


def unexplained_parameters(schema: dict[str, Any]) -> list[str]:
    """The parameters the run form would show without a description, or as "type 'None'" (an
    anyOf with null, or no type at all)."""
    return [
        name
        for name, spec in schema["properties"].items()
        if not spec.get("description") or spec.get("type") in (None, "null") or "anyOf" in spec
    ]


def test_every_flow_is_found() -> None:
    assert {f.name for f in every_flow()} >= {
        "refresh",
        "refresh-schema",
        "refresh-table-data",
        "refresh-connection-data",
        "cleanup",
    }


@pytest.mark.parametrize("flow", every_flow(), ids=lambda f: f.name)
def test_every_parameter_has_a_type_and_a_description_in_the_prefect_api(
    prefect_server: None, flow: Flow[Any, Any]
) -> None:
    deployment_id = flow.to_deployment(name="parameter-check").apply()
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment(deployment_id)
        finally:
            client.delete_deployment(deployment_id)
    schema = deployment.parameter_openapi_schema
    assert schema is not None, flow.name
    # A flow without parameters (freshness) has an empty form, and nothing to explain.
    assert set(schema["properties"]) == set(inspect.signature(flow.fn).parameters), flow.name
    assert unexplained_parameters(schema) == [], schema


def test_every_artifact_of_a_refresh_and_a_cleanup_has_a_description(
    prefect_server: None, tmp_path: Path
) -> None:
    with make_world("sqlite", "duckdb", tmp_path) as world:
        create_numbered_table(world.source, "orders", 10)
        conn_id = world.register()
        states = [
            refresh(connection_id=conn_id, return_state=True),
            refresh(
                connection_id=conn_id,
                schema_name="main",
                table_name="orders",
                data=True,
                return_state=True,
            ),
            refresh(connection_id=conn_id, data=True, return_state=True),
            cleanup(return_state=True),
        ]
    assert all(state.is_completed() for state in states), states
    runs: list[UUID] = [s.state_details.flow_run_id for s in states if s.state_details.flow_run_id]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=runs))
        )
    published = [a for a in artifacts if a.type]  # not the records of persisted results
    assert {a.key for a in published} >= {
        "refresh-schema",
        f"refresh-table-conn-{conn_id}",
        f"refresh-connection-{conn_id}",
        "cleanup",
    }
    assert [a.key for a in published if not a.description] == []
