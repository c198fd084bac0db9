"""The automation that marks a silent flow run Crashed (orchestration/crashed_runs.py) is created
once, as Prefect's recipe has it, and a user's version of it is kept; `freshcache crash-detection`
creates it for a set-up of workers. That it acts on a run that stops responding is
tests/test_schedules.py, on `freshcache up`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

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


def heartbeats_of(run_id: object) -> dict[str, object]:
    """The body of a Prefect `POST /events/filter` for the heartbeats of the flow run `run_id`."""
    return {
        "filter": {
            "event": {"name": ["prefect.flow-run.heartbeat"]},
            "resource": {"id": [f"prefect.flow-run.{run_id}"]},
        }
    }


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


def crash_detection_command(*args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """`freshcache crash-detection` against the session's Prefect server, or as `env` says
    (None: unset)."""
    full_env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    for name, value in env.items():
        if value is None:
            full_env.pop(name, None)
        else:
            full_env[name] = value
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "crash-detection", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_creates_it_for_the_heartbeat_of_prefect_yaml(no_automation: None) -> None:
    created = crash_detection_command()
    assert created.returncode == 0, created.stderr
    assert "no heartbeat for 180 s is marked Crashed" in created.stdout
    kept = crash_detection_command("--heartbeat-seconds", "30")
    assert kept.returncode == 0, kept.stderr
    assert "exists already" in kept.stdout
    assert automations() == [timedelta(seconds=180)]


def test_the_command_takes_another_heartbeat(no_automation: None) -> None:
    result = crash_detection_command("--heartbeat-seconds", "30")
    assert result.returncode == 0, result.stderr
    assert automations() == [timedelta(seconds=90)]


@pytest.mark.parametrize(
    ("args", "env", "code", "message"),
    [
        (("--heartbeat-seconds", "0"), {}, 2, "--heartbeat-seconds must be at least 1"),
        ((), {"PREFECT_API_URL": None}, 2, "set PREFECT_API_URL to the Prefect server"),
        ((), {"PREFECT_API_URL": "http://127.0.0.1:9/api"}, 1, "did not answer"),
    ],
    ids=["no-heartbeat", "no-server", "server-down"],
)
def test_the_command_says_what_is_wrong_and_creates_nothing(
    no_automation: None,
    tmp_path: Path,
    args: tuple[str, ...],
    env: dict[str, str | None],
    code: int,
    message: str,
) -> None:
    result = crash_detection_command(*args, PREFECT_HOME=str(tmp_path), **env)
    assert (result.returncode, result.stdout) == (code, ""), result.stderr
    assert result.stderr.startswith("freshcache: ") and message in result.stderr
    assert automations() == []
