"""The benchmark harness keeps working: `python -m bench --quick` prints a complete table in
which every figure was measured.

No timing is asserted here; the figures themselves are for `make bench`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import HEADER
from tests.services import POSTGRES_HOST, POSTGRES_PORT, require_service

ROOT = Path(__file__).resolve().parents[1]
# The quick bench takes 2-4 minutes (a `freshcache up` among its steps) on a loaded 2-core machine.
pytestmark = [pytest.mark.timeout(600), pytest.mark.long_file(130)]


def test_quick_bench_prints_a_number_in_every_row() -> None:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--pg-host", POSTGRES_HOST],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=560,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("date: ") for line in lines)
    assert any(re.match(r"machine: \d+ CPUs, [\d.]+ GiB RAM", line) for line in lines)
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| " + " | ".join(HEADER) + " |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert len(rows) >= 10, result.stdout  # 21; 23 with the `bench` extra (pandas, dlt)
    # A step that raised still prints its row (the others are worth keeping): "failed: <error>".
    failed = [row for row in rows if row[1].startswith("failed")]
    assert failed == [], f"bench rows failed: {failed}\n{result.stderr[-3000:]}"
    for row in rows:
        assert len(row) == len(HEADER), row
        assert re.search(r"\d", row[1]), f"no number in {row}"
        assert row[5] in ("yes", "**no**"), row
