from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sources import (
    DuckDBConfig,
    SourceSchemaChangedError,
    SourceTableNotFoundError,
    SourceUnavailableError,
    discover,
    open_reader,
    write_parquet,
)
from tests.test_sources_support import (
    check_types,
    comparable,
    find_table,
    read_in_fresh_process,
    read_table,
    through_parquet,
)

UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
UTC = dt.UTC

# name: (DuckDB type, SQL literals, expected Arrow type, expected values); NULL is appended.
CASES: dict[str, tuple[str, list[str], pa.DataType, list[object]]] = {
    "tinyint": ("TINYINT", ["-128", "127"], pa.int8(), [-128, 127]),
    "smallint": ("SMALLINT", ["-32768", "32767"], pa.int16(), [-32768, 32767]),
    "integer": ("INTEGER", ["-2147483648", "2147483647"], pa.int32(), [-(2**31), 2**31 - 1]),
    "bigint": ("BIGINT", [str(-(2**63)), str(2**63 - 1)], pa.int64(), [-(2**63), 2**63 - 1]),
    "ubigint": ("UBIGINT", ["0", str(2**64 - 1)], pa.uint64(), [0, 2**64 - 1]),
    "hugeint": ("HUGEINT", [str(-(2**127))], pa.string(), [str(-(2**127))]),
    "float": (
        "FLOAT",
        ["'NaN'", "'inf'", "'-inf'", "1.5"],
        pa.float32(),
        [float("nan"), float("inf"), float("-inf"), 1.5],
    ),
    "double": (
        "DOUBLE",
        ["'NaN'", "'inf'", "'-inf'", "1e308", "5e-324"],
        pa.float64(),
        [float("nan"), float("inf"), float("-inf"), 1e308, 5e-324],
    ),
    "decimal": ("DECIMAL(10,2)", ["-12345678.91"], pa.decimal128(10, 2), [Decimal("-12345678.91")]),
    "decimal38": (
        "DECIMAL(38,10)",
        ["1234567890123456789012345678.0123456789"],
        pa.decimal128(38, 10),
        [Decimal("1234567890123456789012345678.0123456789")],
    ),
    "varchar": ("VARCHAR", ["'héllo ✓ 日本 🎉'", "''"], pa.string(), ["héllo ✓ 日本 🎉", ""]),
    "boolean": ("BOOLEAN", ["true", "false"], pa.bool_(), [True, False]),
    "date": (
        "DATE",
        ["'0001-01-01'", "'9999-12-31'"],
        pa.date32(),
        [dt.date(1, 1, 1), dt.date(9999, 12, 31)],
    ),
    "time": ("TIME", ["'23:59:59.999999'"], pa.time64("us"), [dt.time(23, 59, 59, 999999)]),
    "timestamp": (
        "TIMESTAMP",
        ["'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'"],
        pa.timestamp("us"),
        [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)],
    ),
    "timestamptz": (
        "TIMESTAMPTZ",
        ["'2020-06-01 12:00:00+02'"],
        pa.timestamp("us", tz="UTC"),
        [dt.datetime(2020, 6, 1, 10, tzinfo=UTC)],
    ),
    "interval": ("INTERVAL", ["INTERVAL 1 DAY"], pa.string(), ["1 day"]),
    "uuid": ("UUID", [f"'{UUID}'"], pa.string(), [UUID]),
    "json": ("JSON", ['\'{"b": 1, "a": [1, 2]}\''], pa.string(), ['{"b": 1, "a": [1, 2]}']),
    "blob": ("BLOB", ["'\\x00\\xFF'::BLOB"], pa.binary(), [b"\x00\xff"]),
    "enum": ("ENUM('sad', 'happy')", ["'happy'"], pa.string(), ["happy"]),
    "list": ("INTEGER[]", ["[1, NULL, 3]", "[]"], pa.list_(pa.int32()), [[1, None, 3], []]),
    "struct": (
        "STRUCT(a INTEGER, u UUID)",
        [f"{{'a': 1, 'u': '{UUID}'}}"],
        pa.struct([("a", pa.int32()), ("u", pa.string())]),
        [{"a": 1, "u": UUID}],
    ),
    "map": (
        "MAP(VARCHAR, INTEGER)",
        ["MAP {'k': 1}"],
        pa.map_(pa.string(), pa.int32()),
        [[("k", 1)]],
    ),
}


def make_db(path: Path, sql: str) -> DuckDBConfig:
    with duckdb.connect(str(path)) as con:
        con.execute(sql)
    return DuckDBConfig(path=str(path))


def test_every_type_family_round_trips_through_parquet(tmp_path: Path) -> None:
    sql = "".join(
        f"CREATE TABLE t_{name} (v {sql_type});"
        + "".join(f"INSERT INTO t_{name} VALUES ({value});" for value in [*values, "NULL"])
        for name, (sql_type, values, _, _) in CASES.items()
    )
    config = make_db(tmp_path / "types.duckdb", sql)
    cases = {name: (arrow, [*expected, None]) for name, (_, _, arrow, expected) in CASES.items()}
    check_types(config, cases, tmp_path, schema_name="main")


def test_discovery_lists_tables_and_views_in_ordinal_order(tmp_path: Path) -> None:
    config = make_db(
        tmp_path / "d.duckdb",
        "CREATE SCHEMA s; CREATE TABLE s.t (z INTEGER NOT NULL, a VARCHAR, m DOUBLE);"
        "CREATE VIEW main.v AS SELECT a, z FROM s.t;",
    )
    tables = discover(config, None, connection_name="duck")
    assert [(t.schema_name, t.table_name) for t in tables] == [("main", "v"), ("s", "t")]
    assert find_table(tables, "s", "t").arrow_schema == pa.schema(
        [pa.field("z", pa.int32(), nullable=False), ("a", pa.string()), ("m", pa.float64())]
    )
    assert find_table(tables, "main", "v").arrow_schema.names == ["a", "z"]


def test_five_thousand_tables_discover_in_seconds(tmp_path: Path) -> None:
    tables = "".join(f"CREATE TABLE t{i} (a INTEGER, b VARCHAR, c DATE);" for i in range(5000))
    sql = f"BEGIN;{tables}COMMIT;"
    config = make_db(tmp_path / "many.duckdb", sql)
    started = time.monotonic()
    tables = discover(config, None, connection_name="duck")
    assert len(tables) == 5000
    assert time.monotonic() - started < 5


def test_an_empty_table_gives_a_valid_parquet_file(tmp_path: Path) -> None:
    config = make_db(tmp_path / "e.duckdb", "CREATE TABLE e (a INTEGER NOT NULL, b VARCHAR[])")
    table = find_table(discover(config, None, connection_name="duck"), "main", "e")
    data = read_table(config, None, table)
    assert data.num_rows == 0
    back = through_parquet(data, tmp_path)
    assert back.schema.equals(table.arrow_schema)
    assert pq.read_metadata(tmp_path / "roundtrip.parquet").num_rows == 0


def test_hostile_names_are_quoted(tmp_path: Path) -> None:
    name = 'x"; DROP TABLE y; --'
    quoted = '"x""; DROP TABLE y; --"'
    config = make_db(
        tmp_path / "q.duckdb",
        f'CREATE TABLE y (a INTEGER); CREATE TABLE {quoted} ("we""ird" INTEGER);'
        f"INSERT INTO {quoted} VALUES (7)",
    )
    tables = discover(config, None, connection_name="duck")
    data = read_table(config, None, find_table(tables, "main", name))
    assert data.to_pylist() == [{'we"ird': 7}]
    assert {t.table_name for t in discover(config, None, connection_name="duck")} == {name, "y"}


def test_batches_are_streamed_in_the_requested_size(tmp_path: Path) -> None:
    config = make_db(tmp_path / "b.duckdb", "CREATE TABLE b AS SELECT range AS i FROM range(5000)")
    table = find_table(discover(config, None, connection_name="duck"), "main", "b")
    with open_reader(config, None, table, connection_name="duck", batch_rows=1024) as reader:
        sizes = [batch.num_rows for batch in reader]
    assert sum(sizes) == 5000 and max(sizes) <= 1024 and len(sizes) >= 5


def test_a_missing_file_is_an_error_and_stays_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.duckdb"
    with pytest.raises(SourceUnavailableError, match=r"duck.*does not exist") as caught:
        discover(DuckDBConfig(path=str(path)), None, connection_name="duck")
    assert caught.value.connection_name == "duck"
    assert not path.exists()


def test_a_table_dropped_since_discovery(tmp_path: Path) -> None:
    config = make_db(tmp_path / "x.duckdb", "CREATE TABLE gone (a INTEGER)")
    table = find_table(discover(config, None, connection_name="duck"), "main", "gone")
    with duckdb.connect(config.path) as con:
        con.execute("DROP TABLE gone")
    with (
        pytest.raises(SourceTableNotFoundError, match=r"'duck'.*gone"),
        open_reader(config, None, table, connection_name="duck"),
    ):
        pass


def test_a_column_retyped_since_discovery(tmp_path: Path) -> None:
    config = make_db(tmp_path / "x.duckdb", "CREATE TABLE t (a INTEGER, b VARCHAR)")
    table = find_table(discover(config, None, connection_name="duck"), "main", "t")
    with duckdb.connect(config.path) as con:
        con.execute("ALTER TABLE t ALTER a TYPE BIGINT")
    with (
        pytest.raises(SourceSchemaChangedError, match=r"'duck'.*changed \['a'\]"),
        open_reader(config, None, table, connection_name="duck"),
    ):
        pass


def test_peak_memory_does_not_grow_with_the_table(tmp_path: Path) -> None:
    config = make_db(
        tmp_path / "big.duckdb",
        "".join(
            f"CREATE TABLE {name} AS SELECT range AS i, repeat(md5(range::VARCHAR), 8) AS s, "
            f"now() AS t FROM range({rows});"
            # Both exceed the buffer pool's cap (MEMORY_LIMIT), which fills up first.
            for name, rows in (("small", 4_000_000), ("large", 8_000_000))  # ~1080 / ~2160 MB
        ),
    )
    small_rows, small_peak = read_in_fresh_process(config, "small")
    large_rows, large_peak = read_in_fresh_process(config, "large")
    assert (small_rows, large_rows) == (4_000_000, 8_000_000)
    assert large_peak - small_peak < 60, (small_peak, large_peak)


def test_duckdb_writes_every_type_family_as_the_reader_streams_it(tmp_path: Path) -> None:
    """write_parquet (DuckDB's own writer, what a refresh uses) gives the types and values
    of open_reader's stream."""
    sql = "".join(
        f"CREATE TABLE t_{name} (v {sql_type});"
        + "".join(f"INSERT INTO t_{name} VALUES ({value});" for value in [*values, "NULL"])
        for name, (sql_type, values, _, _) in CASES.items()
    )
    config = make_db(tmp_path / "types.duckdb", sql)
    problems = []
    for table in discover(config, None, connection_name="duck"):
        out = tmp_path / f"{table.table_name}.parquet"
        rows = write_parquet(config, None, table, str(out), connection_name="duck")
        written = pq.read_table(out)
        streamed = read_table(config, None, table)
        if rows != streamed.num_rows or written.schema.types != streamed.schema.types:
            problems.append(f"{table.table_name}: {rows} rows, {written.schema} vs {streamed}")
        elif comparable(written.to_pylist()) != comparable(streamed.to_pylist()):
            problems.append(f"{table.table_name}: {written.to_pylist()}")
    assert not problems, "\n".join(problems)


def test_duckdb_writes_no_file_for_a_table_changed_since_discovery(tmp_path: Path) -> None:
    config = make_db(tmp_path / "x.duckdb", "CREATE TABLE t (a INTEGER)")
    table = find_table(discover(config, None, connection_name="duck"), "main", "t")
    with duckdb.connect(config.path) as con:
        con.execute("ALTER TABLE t ADD COLUMN b VARCHAR")
    out = tmp_path / "t.parquet"
    with pytest.raises(SourceSchemaChangedError, match=r"'duck'.*added \['b'\]"):
        write_parquet(config, None, table, str(out), connection_name="duck")
    assert not out.exists()
