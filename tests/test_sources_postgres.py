from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from sources import (
    PostgresConfig,
    SourceSchemaChangedError,
    SourceTableNotFoundError,
    SourceUnavailableError,
    SqlAlchemyConfig,
    TableMetadata,
    discover,
    open_reader,
)
from sources import postgres as pg_driver
from sources.arrow import conform
from tests.services import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, postgres_url
from tests.test_sources_support import (
    check_types,
    comparable,
    find_table,
    read_in_fresh_process,
    read_table,
    through_parquet,
)

UUID = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
INF, NAN = float("inf"), float("nan")

# name: (PostgreSQL type, SQL literals, expected Arrow type, expected values); NULL is appended.
CASES: dict[str, tuple[str, list[str], pa.DataType, list[object]]] = {
    "int2": ("int2", ["-32768", "32767"], pa.int16(), [-32768, 32767]),
    "int4": ("int4", ["-2147483648", "2147483647"], pa.int32(), [-(2**31), 2**31 - 1]),
    "int8": ("int8", [str(-(2**63)), str(2**63 - 1)], pa.int64(), [-(2**63), 2**63 - 1]),
    "float4": (
        "float4",
        ["'NaN'", "'Infinity'", "'-Infinity'", "1.5"],
        pa.float32(),
        [NAN, INF, -INF, 1.5],
    ),
    "float8": (
        "float8",
        ["'NaN'", "'Infinity'", "'-Infinity'", "1e308", "5e-324"],
        pa.float64(),
        [NAN, INF, -INF, 1e308, 5e-324],
    ),
    "numeric": ("numeric(10,2)", ["-12345678.91"], pa.decimal128(10, 2), [Decimal("-12345678.91")]),
    "numeric_scale20": (
        "numeric(38,20)",
        ["123456789012345678.12345678901234567891"],
        pa.decimal128(38, 20),
        [Decimal("123456789012345678.12345678901234567891")],
    ),
    "numeric_wide": (
        "numeric(50,5)",
        ["123456789012345678901234567890123456789012345.12345"],
        pa.decimal256(50, 5),
        [Decimal("123456789012345678901234567890123456789012345.12345")],
    ),
    "numeric_unconstrained": (
        "numeric",
        ["1.5e-20", "'NaN'", "123456789012345678901234567890.123"],
        pa.string(),
        ["0.000000000000000000015", "NaN", "123456789012345678901234567890.123"],
    ),
    "text": ("text", ["'héllo ✓ 日本 🎉'", "''"], pa.string(), ["héllo ✓ 日本 🎉", ""]),
    "varchar": ("varchar(10)", ["'é'"], pa.string(), ["é"]),
    "char": ("char(3)", ["'ab'"], pa.string(), ["ab "]),
    "bool": ("bool", ["true", "false"], pa.bool_(), [True, False]),
    "date": (
        "date",
        ["'0001-01-01'", "'9999-12-31'"],
        pa.date32(),
        [dt.date(1, 1, 1), dt.date(9999, 12, 31)],
    ),
    "time": (
        "time",
        ["'00:00:00'", "'23:59:59.999999'"],
        pa.time64("us"),
        [dt.time(0), dt.time(23, 59, 59, 999999)],
    ),
    "timestamp": (
        "timestamp",
        ["'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'"],
        pa.timestamp("us"),
        [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)],
    ),
    "timestamptz": (
        "timestamptz",
        ["'2020-06-01 12:00:00+02'", "'0001-01-01 00:00:00+00'"],
        pa.timestamp("us", tz="UTC"),
        [dt.datetime(2020, 6, 1, 10, tzinfo=dt.UTC), dt.datetime(1, 1, 1, tzinfo=dt.UTC)],
    ),
    "interval": (
        "interval",
        ["'1 year 2 months 3 days 04:05:06.789'"],
        pa.string(),
        ["1 year 2 mons 3 days 04:05:06.789"],
    ),
    "uuid": ("uuid", [f"'{UUID}'"], pa.string(), [UUID]),
    "json": ("json", ['\'{"b": 1,  "a": [1, 2]}\''], pa.string(), ['{"b": 1,  "a": [1, 2]}']),
    "jsonb": ("jsonb", ['\'{"b": 1,  "a": [1, 2]}\''], pa.string(), ['{"a": [1, 2], "b": 1}']),
    "bytea": ("bytea", ["'\\x00ff'", "''"], pa.binary(), [b"\x00\xff", b""]),
    "int_array": ("int4[]", ["'{1,NULL,3}'", "'{}'"], pa.list_(pa.int32()), [[1, None, 3], []]),
    "text_array": ("text[]", ["'{\"a b\",NULL,é}'"], pa.list_(pa.string()), [["a b", None, "é"]]),
    "numeric_array": (
        "numeric(5,2)[]",
        ["'{1.5,-2.25}'"],
        pa.list_(pa.decimal128(5, 2)),
        [[Decimal("1.50"), Decimal("-2.25")]],
    ),
    "date_array": ("date[]", ["'{2020-01-02}'"], pa.list_(pa.date32()), [[dt.date(2020, 1, 2)]]),
    "uuid_array": ("uuid[]", [f"'{{{UUID}}}'"], pa.list_(pa.string()), [[UUID]]),
    "enum": ("mood", ["'happy'"], pa.string(), ["happy"]),
    "enum_array": ("mood[]", ["'{sad,happy}'"], pa.list_(pa.string()), [["sad", "happy"]]),
    "domain": ("positive", ["42"], pa.int32(), [42]),
    "inet": ("inet", ["'10.0.0.1/8'"], pa.string(), ["10.0.0.1/8"]),
}


def execute(database: str, sql: str) -> None:
    with psycopg.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user=POSTGRES_USER, dbname=database, autocommit=True
    ) as conn:
        conn.execute(sql)


def config_for(database: str, **overrides: Any) -> PostgresConfig:
    fields = {"host": POSTGRES_HOST, "port": POSTGRES_PORT, "user": POSTGRES_USER}
    return PostgresConfig(**{**fields, "database": database, **overrides})


def create_type_tables(database: str) -> None:
    execute(
        database,
        "CREATE TYPE mood AS ENUM ('sad', 'happy');"
        "CREATE DOMAIN positive AS int4 CHECK (VALUE > 0);"
        + "".join(
            f"CREATE TABLE t_{name} (v {sql_type});"
            + "".join(f"INSERT INTO t_{name} VALUES ({value});" for value in [*values, "NULL"])
            for name, (sql_type, values, _, _) in CASES.items()
        ),
    )


def test_every_type_family_round_trips_through_parquet(
    pg_database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    create_type_tables(pg_database)
    cases = {name: (arrow, [*expected, None]) for name, (_, _, arrow, expected) in CASES.items()}
    check_types(config_for(pg_database), cases, tmp_path, schema_name="public")
    assert "could not read" not in caplog.text


@pytest.mark.parametrize("method", ["adbc", "connectorx", "cursor"])
def test_every_read_method_reads_the_same_values(
    pg_database: str, method: pg_driver.ReadMethod, caplog: pytest.LogCaptureFixture
) -> None:
    create_type_tables(pg_database)
    config = config_for(pg_database)
    for table in discover(config, None, connection_name="pg"):
        expected = read_table(config, None, table)
        with pg_driver.open_stream(config, None, table, 1000, method=method) as stream:
            batches = list(conform(stream.batches(), table.arrow_schema))
        actual = pa.Table.from_batches(batches, table.arrow_schema)
        assert comparable(actual.to_pylist()) == comparable(expected.to_pylist()), table.table_name
    assert "could not read" not in caplog.text


def test_discovery_lists_tables_and_views_without_system_schemas(pg_database: str) -> None:
    execute(
        pg_database,
        "CREATE SCHEMA s; CREATE TABLE s.t (z int8 NOT NULL, a text, m float8);"
        "ALTER TABLE s.t DROP COLUMN m; ALTER TABLE s.t ADD COLUMN n date;"
        "CREATE VIEW public.v AS SELECT a, z FROM s.t;"
        "CREATE MATERIALIZED VIEW public.mv AS SELECT z FROM s.t;"
        "CREATE TABLE p (a int) PARTITION BY RANGE (a);"
        "CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (10);",
    )
    tables = discover(config_for(pg_database), None, connection_name="pg")
    assert [(t.schema_name, t.table_name) for t in tables] == [
        ("public", "mv"),
        ("public", "p"),
        ("public", "v"),
        ("s", "t"),
    ]
    assert find_table(tables, "s", "t").arrow_schema == pa.schema(
        [pa.field("z", pa.int64(), nullable=False), ("a", pa.string()), ("n", pa.date32())]
    )
    assert find_table(tables, "public", "v").arrow_schema.names == ["a", "z"]


def test_thousands_of_tables_discover_in_seconds(pg_database: str) -> None:
    execute(
        pg_database,
        "DO $$ BEGIN FOR i IN 1..3000 LOOP "
        "EXECUTE format('CREATE TABLE t%s (a int, b text, c numeric(10,2), d int[])', i); "
        "END LOOP; END $$",
    )
    started = time.monotonic()
    tables = discover(config_for(pg_database), None, connection_name="pg")
    assert len(tables) == 3000
    assert time.monotonic() - started < 5


def test_an_empty_table_gives_a_valid_parquet_file(pg_database: str, tmp_path: Path) -> None:
    execute(pg_database, "CREATE TABLE e (a int NOT NULL, b numeric(12,3), c text[])")
    config = config_for(pg_database)
    table = find_table(discover(config, None, connection_name="pg"), "public", "e")
    data = read_table(config, None, table)
    assert data.num_rows == 0
    assert through_parquet(data, tmp_path).schema.equals(table.arrow_schema)


def test_hostile_names_are_quoted(pg_database: str) -> None:
    execute(
        pg_database,
        'CREATE TABLE y (a int); CREATE TABLE "x""; DROP TABLE y; --" ("we""ird" int, "Up" int);'
        'INSERT INTO "x""; DROP TABLE y; --" VALUES (7, 8)',
    )
    config = config_for(pg_database)
    table = find_table(
        discover(config, None, connection_name="pg"), "public", 'x"; DROP TABLE y; --'
    )
    assert read_table(config, None, table).to_pylist() == [{'we"ird': 7, "Up": 8}]
    assert {t.table_name for t in discover(config, None, connection_name="pg")} == {
        "y",
        'x"; DROP TABLE y; --',
    }


def test_batches_are_streamed_in_the_requested_size(pg_database: str) -> None:
    execute(pg_database, "CREATE TABLE b AS SELECT i FROM generate_series(1, 5000) AS i")
    config = config_for(pg_database)
    table = find_table(discover(config, None, connection_name="pg"), "public", "b")
    with open_reader(config, None, table, connection_name="pg", batch_rows=1024) as reader:
        sizes = [batch.num_rows for batch in reader]
    assert sum(sizes) == 5000 and max(sizes) <= 1024


def test_an_unreachable_host_fails_fast_without_the_password() -> None:
    config = config_for("test", port=1, connect_timeout=3)
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="'pg'") as caught:
        discover(config, "Hunter2-secret", connection_name="pg")
    assert time.monotonic() - started < 5
    assert "Hunter2-secret" not in str(caught.value)
    assert caught.value.connection_name == "pg"


def test_an_unroutable_host_times_out_within_the_connect_timeout() -> None:
    config = config_for("test", host="10.255.255.1", connect_timeout=2)
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="'pg'"):
        discover(config, None, connection_name="pg")
    assert time.monotonic() - started < 8


def dropped_or_changed(pg_database: str, change: str) -> TableMetadata:
    execute(pg_database, "CREATE TABLE t (a int, b text); INSERT INTO t VALUES (1, 'x')")
    table = find_table(discover(config_for(pg_database), None, connection_name="pg"), "public", "t")
    execute(pg_database, change)
    return table


def test_a_table_dropped_since_discovery(pg_database: str) -> None:
    table = dropped_or_changed(pg_database, "DROP TABLE t")
    with (
        pytest.raises(SourceTableNotFoundError, match=r"'pg'.*public\.t"),
        open_reader(config_for(pg_database), None, table, connection_name="pg"),
    ):
        pass


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE t ALTER a TYPE int8",
        "ALTER TABLE t ADD COLUMN c int",
        "ALTER TABLE t DROP COLUMN b",
        "ALTER TABLE t ALTER a SET NOT NULL",
    ],
)
def test_a_table_changed_since_discovery(pg_database: str, change: str) -> None:
    table = dropped_or_changed(pg_database, change)
    with (
        pytest.raises(SourceSchemaChangedError, match=r"'pg'.*public\.t.*changed"),
        open_reader(config_for(pg_database), None, table, connection_name="pg"),
    ):
        pass


def test_peak_memory_does_not_grow_with_the_table(pg_database: str) -> None:
    for name, rows in (("small", 100_000), ("large", 1_000_000)):  # large: ~300 MB of text
        execute(
            pg_database,
            f"CREATE TABLE {name} AS SELECT i, repeat(md5(i::text), 8) AS s, now() AS t, "
            f"i * 1.5 AS f FROM generate_series(1, {rows}) AS i",
        )
    config = config_for(pg_database)
    small_rows, small_peak = read_in_fresh_process(config, "small")
    large_rows, large_peak = read_in_fresh_process(config, "large")
    assert (small_rows, large_rows) == (100_000, 1_000_000)
    assert large_peak - small_peak < 60, (small_peak, large_peak)


def test_a_connection_dropped_while_reading(pg_database: str) -> None:
    execute(
        pg_database,
        "CREATE TABLE big AS SELECT i, repeat(md5(i::text), 8) AS s "
        "FROM generate_series(1, 500000) AS i",
    )
    config = config_for(pg_database)
    table = find_table(discover(config, None, connection_name="pg"), "public", "big")
    terminate = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{pg_database}' AND pid <> pg_backend_pid()"
    )
    with (
        pytest.raises(SourceUnavailableError, match="'pg'"),
        open_reader(config, None, table, connection_name="pg", batch_rows=1000) as reader,
    ):
        for number, _ in enumerate(reader):
            if number == 2:
                execute(pg_database, terminate)


def test_the_sqlalchemy_path_reads_postgres_too(pg_database: str, tmp_path: Path) -> None:
    execute(
        pg_database,
        "CREATE SCHEMA s; CREATE TABLE s.t (a int4 NOT NULL, b numeric(10,2), c numeric,"
        " d text[], e jsonb, g interval, h timestamptz, i bytea, k bool);"
        "INSERT INTO s.t VALUES (1, 1.5, 2.5, '{a,b}', '{\"x\": 1}', '1 day',"
        " '2020-06-01 12:00+02', '\\x00', true),"
        " (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
        "CREATE VIEW public.v AS SELECT a FROM s.t;",
    )
    config = SqlAlchemyConfig(url=postgres_url(pg_database))
    tables = discover(config, None, connection_name="g")
    assert [(t.schema_name, t.table_name) for t in tables] == [("public", "v"), ("s", "t")]
    table = find_table(tables, "s", "t")
    assert table.arrow_schema.types == [
        pa.int64(),
        pa.decimal128(10, 2),
        pa.string(),
        pa.list_(pa.string()),
        pa.string(),
        pa.duration("us"),
        pa.timestamp("us", tz="UTC"),
        pa.binary(),
        pa.bool_(),
    ]
    data = through_parquet(read_table(config, None, table), tmp_path)
    assert data.to_pylist()[0] == {
        "a": 1,
        "b": Decimal("1.50"),
        "c": "2.5",
        "d": ["a", "b"],
        "e": '{"x": 1}',
        "g": dt.timedelta(days=1),
        "h": dt.datetime(2020, 6, 1, 10, tzinfo=dt.UTC),
        "i": b"\x00",
        "k": True,
    }


def test_reads_in_threads_overlap(pg_database: str) -> None:
    execute(
        pg_database,
        "CREATE VIEW slow AS SELECT g.i FROM generate_series(1, 3) AS g(i), pg_sleep(1) AS s",
    )
    config = config_for(pg_database)
    table = find_table(discover(config, None, connection_name="pg"), "public", "slow")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=3) as pool:
        counts = list(pool.map(lambda _: read_table(config, None, table).num_rows, range(3)))
    assert counts == [3, 3, 3]
    assert time.monotonic() - started < 2.5
