"""Flow runs that stop responding are marked Crashed: Prefect's heartbeats, and the automation
that acts on them.

A run of a deployment sends a heartbeat event every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds.
When its process dies with the machine, or hangs, or its runner is killed along with it, no one
reports its end: without an automation it stays Running in the UI forever, and a connection run
it was part of looks busy. This automation (Prefect's recipe for "zombie" runs) marks a run
Crashed once MISSED_HEARTBEATS heartbeats in a row did not come.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.automations import Automation
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification

AUTOMATION_NAME = "freshcache: crash flow runs that stop responding"
MISSED_HEARTBEATS = 3
# What ends a run's wait for its next heartbeat: another heartbeat, or the run's end.
_ALIVE_OR_ENDED = {
    "prefect.flow-run.heartbeat",
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Cancelled",
    "prefect.flow-run.Crashed",
}


def crash_automation(heartbeat_seconds: int) -> Automation:
    silence = heartbeat_seconds * MISSED_HEARTBEATS
    return Automation(
        name=AUTOMATION_NAME,
        description=f"Marks a flow run Crashed when it has sent no heartbeat for {silence} s "
        f"({MISSED_HEARTBEATS} heartbeats of {heartbeat_seconds} s). Created by freshcache up "
        "or freshcache crash-detection when missing; changes made here are kept.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect=_ALIVE_OR_ENDED,
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=silence),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {silence} s: the run's process died or hangs.",
            )
        ],
    )


def ensure_crash_detection(heartbeat_seconds: int | None) -> bool:
    """Create the automation unless one of its name exists (True if created): a user may have
    tuned or paused it in the UI, and that stays. Runs without heartbeats (None) have nothing to
    detect them by."""
    if heartbeat_seconds is None:
        return False
    # Called from sync code, Prefect's dispatch runs these now (typed as the async variants too).
    try:
        Automation.read(name=AUTOMATION_NAME)  # type: ignore[unused-coroutine]
    except ValueError:  # Prefect's answer for "no automation of that name"
        crash_automation(heartbeat_seconds).create()  # type: ignore[unused-coroutine]
        return True
    return False
