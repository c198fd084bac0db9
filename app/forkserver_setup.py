"""Imported once, by the warm forkserver of app.warm_runs as it starts (first in its PRELOAD),
and nowhere else: the forkserver and every flow run forked from it go when the runner goes.

The forkserver cannot see the runner go: each run it forks holds the forkserver's end of the
pipe that tells it the runner has ended, so a runner killed with a run in flight (SIGKILL, or
`freshcache up` killed and taking its runner with it) would leave both behind, re-parented to
init, the run waiting forever for a Prefect server that is gone.
"""

from __future__ import annotations

import os
import signal

from app.processes import die_with_parent

# Cleared in each run as it starts: a run inherits this hook, and its own forks are not runs.
_forkserver: int | None = os.getpid()


def _in_each_run() -> None:
    """In a run just forked: back to the default SIGTERM, and killed when the forkserver ends."""
    global _forkserver
    forkserver, _forkserver = _forkserver, None
    if forkserver is None:
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()
    if os.getppid() != forkserver:  # the forkserver ended before the line above
        os._exit(1)


# Tied to the runner from here on. A runner that died before this line has forked no run yet,
# so nothing else holds the pipe: the forkserver sees it close and exits on its own.
die_with_parent()
# A stop's SIGTERM reaches the runner's whole process group. The forkserver stays until the
# runner has cancelled its runs and ended; its runs handle their SIGTERM themselves meanwhile.
signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.register_at_fork(after_in_child=_in_each_run)
