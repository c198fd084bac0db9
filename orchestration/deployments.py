"""The names of freshcache's deployments, and what their runs are given: the one place every
module takes them from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeploymentName:
    flow: str
    deployment: str

    @property
    def full(self) -> str:
        """`flow/deployment`, as Prefect's API and CLI name a deployment."""
        return f"{self.flow}/{self.deployment}"


REFRESH = DeploymentName(flow="refresh", deployment="freshcache-refresh")
CLEANUP = DeploymentName(flow="cleanup", deployment="freshcache-cleanup")
FRESHNESS = DeploymentName(flow="freshness", deployment="freshcache-freshness")

# How often a deployment's run tells the Prefect server it is alive, under `freshcache up` and in
# prefect.yaml's job variables: a run that stops responding is marked Crashed after three missed
# ones (orchestration/crashed_runs.py), 3 minutes instead of 9 at Prefect's default of 180 s.
HEARTBEAT_SECONDS = 60
