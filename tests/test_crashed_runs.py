"""The automation that marks a silent flow run Crashed (orchestration/crashed_runs.py) is created
once, as Prefect's recipe has it, and a user's version of it is kept. That it acts on a run that
stops responding is tests/test_schedules.py, on `freshcache up`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from orchestration.crashed_runs import AUTOMATION_NAME, crash_automation, ensure_crash_detection


@pytest.fixture
def no_automation(prefect_server: None) -> Iterator[None]:
    """No automation of that name before the test, and none left after it."""
    remove_automations()
    yield
    remove_automations()


def remove_automations() -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for automation in client.read_automations_by_name(AUTOMATION_NAME):
            client.delete_automation(automation.id)


def automations() -> list[timedelta]:
    """The silence each automation of that name waits for."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        found = client.read_automations_by_name(AUTOMATION_NAME)
    return [a.trigger.within for a in found]  # type: ignore[union-attr]


def test_missing_it_is_created_waiting_for_three_heartbeats(no_automation: None) -> None:
    ensure_crash_detection(60)
    ensure_crash_detection(60)
    assert automations() == [timedelta(seconds=180)]


def test_a_users_version_is_kept(no_automation: None) -> None:
    crash_automation(100).create()  # as tuned in the UI: 300 s
    ensure_crash_detection(60)
    assert automations() == [timedelta(seconds=300)]


def test_runs_without_heartbeats_get_none(no_automation: None) -> None:
    ensure_crash_detection(None)
    assert automations() == []
