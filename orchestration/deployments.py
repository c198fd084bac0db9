"""The names of freshcache's deployments: the one place every module takes them from."""

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
