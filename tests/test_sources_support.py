"""Helpers shared by the source tests (no tests here)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from sources import SourceConfig, TableMetadata, discover, open_reader


def find_table(tables: list[TableMetadata], schema_name: str, table_name: str) -> TableMetadata:
    matches = [t for t in tables if (t.schema_name, t.table_name) == (schema_name, table_name)]
    assert len(matches) == 1, f"{schema_name}.{table_name} not in {[t.table_name for t in tables]}"
    return matches[0]


def read_table(
    config: SourceConfig, password: str | None, table: TableMetadata, *, batch_rows: int = 1000
) -> pa.Table:
    with open_reader(config, password, table, connection_name="c", batch_rows=batch_rows) as r:
        assert r.schema.equals(table.arrow_schema)
        return r.read_all()


def through_parquet(table: pa.Table, directory: Path) -> pa.Table:
    """Write `table` to a Parquet file and read it back; assert nothing changed."""
    path = directory / "roundtrip.parquet"
    pq.write_table(table, path, compression="zstd")
    back = pq.read_table(path)
    assert back.schema.equals(table.schema), (back.schema, table.schema)
    assert comparable(back.to_pylist()) == comparable(table.to_pylist())
    return back


def comparable(value: Any) -> Any:
    """`value` with NaN replaced by a marker, so that equal data compares equal."""
    if isinstance(value, float) and math.isnan(value):
        return "<NaN>"
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [comparable(v) for v in value]
    return value


def check_types(
    config: SourceConfig,
    cases: dict[str, tuple[pa.DataType, list[Any]]],
    directory: Path,
    *,
    schema_name: str,
) -> None:
    """Each case is a one-column table `t_<name>` (column `v`) holding the expected values."""
    tables = discover(config, None, connection_name="c")
    problems = []
    for name, (arrow_type, expected) in cases.items():
        table = find_table(tables, schema_name, f"t_{name}")
        field = table.arrow_schema.field("v")
        if field.type != arrow_type:
            problems.append(f"{name}: type {field.type}, expected {arrow_type}")
            continue
        data = through_parquet(read_table(config, None, table), directory)
        if comparable(data.column("v").to_pylist()) != comparable(expected):
            problems.append(f"{name}: {data.column('v').to_pylist()} != {expected}")
    assert not problems, "\n".join(problems)


# VmHWM, unlike ru_maxrss, starts afresh at exec: the parent's size does not count.
_PEAK_RSS_SCRIPT = """
import json, re, sys
from pathlib import Path
from sources import discover, open_reader, parse_source_config
config = parse_source_config(sys.argv[1], json.loads(sys.argv[2]))
table = next(t for t in discover(config, None, connection_name="m") if t.table_name == sys.argv[3])
rows = 0
with open_reader(config, None, table, connection_name="m", batch_rows=10_000) as reader:
    for batch in reader:
        rows += batch.num_rows
peak_kb = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(rows, int(peak_kb) // 1024)
"""


def read_in_fresh_process(config: SourceConfig, table_name: str) -> tuple[int, int]:
    """(rows read, peak RSS in MB) of a fresh process reading `table_name` to the end."""
    fields = config.model_dump(mode="json", exclude={"source_type"})
    command = [sys.executable, "-c", _PEAK_RSS_SCRIPT, config.source_type, json.dumps(fields)]
    result = subprocess.run(
        [*command, table_name],
        capture_output=True,
        text=True,
        check=True,
        timeout=240,
        cwd=Path(__file__).parents[1],
    )
    rows, peak_mb = result.stdout.split()
    return int(rows), int(peak_mb)
