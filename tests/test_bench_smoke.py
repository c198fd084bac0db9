"""The benchmark harness keeps working: `python -m bench --quick` prints a complete table.

No timing is asserted here; the figures themselves are for `make bench`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from bench.report import HEADER
from tests.services import POSTGRES_HOST, POSTGRES_PORT, require_service

ROOT = Path(__file__).resolve().parents[1]


def test_quick_bench_prints_a_number_in_every_row() -> None:
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--pg-host", POSTGRES_HOST],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert any(line.startswith("date: ") for line in lines)
    assert any(re.match(r"machine: \d+ CPUs, [\d.]+ GiB RAM", line) for line in lines)
    table = [line for line in lines if line.startswith("|")]
    assert table[0] == "| " + " | ".join(HEADER) + " |"
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table[2:]]
    assert len(rows) >= 10, result.stdout  # 12 with the `bench` extra (pandas, dlt)
    for row in rows:
        assert len(row) == len(HEADER), row
        assert re.search(r"\d", row[1]), f"no number in {row}"
        assert row[5] in ("yes", "**no**"), row
