"""The refresh plan through the Prefect flows, on both catalog and source backends."""

from __future__ import annotations

import pytest

from tests.executors import FlowExecutor
from tests.scenarios import SCENARIOS, Scenario
from tests.world import World


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
def test_refresh_scenario(world: World, scenario: Scenario) -> None:
    scenario(world, FlowExecutor())
