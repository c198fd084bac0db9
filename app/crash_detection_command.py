"""`freshcache crash-detection`: the automation that marks silent deployment runs Crashed, on
the Prefect server of PREFECT_API_URL, for a set-up of workers (`prefect deploy --all`);
`freshcache up` creates it on its own server."""

from __future__ import annotations

import sys

import httpx
from prefect.settings import get_current_settings

from orchestration.crashed_runs import AUTOMATION_NAME, MISSED_HEARTBEATS, ensure_crash_detection


def run_crash_detection_command(heartbeat: int) -> int:
    """Create the automation for runs that send a heartbeat every `heartbeat` seconds."""
    if heartbeat < 1:
        print("freshcache: --heartbeat-seconds must be at least 1", file=sys.stderr)
        return 2
    api = get_current_settings().api.url
    if not api:
        print(
            "freshcache: set PREFECT_API_URL to the Prefect server your workers use",
            file=sys.stderr,
        )
        return 2
    try:
        created = ensure_crash_detection(heartbeat)
    except httpx.HTTPError as exc:
        print(f"freshcache: the Prefect API at {api} did not answer: {exc}", file=sys.stderr)
        return 1
    if created:
        print(
            f"created the automation {AUTOMATION_NAME!r}: a deployment run that sends no "
            f"heartbeat for {heartbeat * MISSED_HEARTBEATS} s is marked Crashed"
            f" (runs send one every {heartbeat} s)"
        )
    else:
        print(f"the automation {AUTOMATION_NAME!r} exists already: kept as it is")
    return 0
