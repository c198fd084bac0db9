"""The child side of a fresh-process measurement: `python -m bench.worker <kind> <json params>`.

Prints one JSON line: {"seconds", "file_bytes", "peak_kb"}, the last being this process's VmHWM
(its resident set's high-water mark since exec).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.fetches import FETCHES


def main() -> None:
    kind, params = sys.argv[1], json.loads(sys.argv[2])
    seconds, file_bytes = FETCHES[kind](**params)
    report = {"seconds": seconds, "file_bytes": file_bytes, "peak_kb": peak_rss_kb()}
    print(json.dumps(report))


def peak_rss_kb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])


if __name__ == "__main__":
    main()
