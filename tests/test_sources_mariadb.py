from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pymysql
import pytest
import sqlalchemy as sa
from pymysql.constants import CLIENT

from sources import (
    SourceAuthError,
    SourceSchemaChangedError,
    SourceTableNotFoundError,
    SourceUnavailableError,
    SqlAlchemyConfig,
    TableMetadata,
    discover,
    open_reader,
)
from tests.services import MARIADB_HOST, MARIADB_PORT, MARIADB_USER, mariadb_url
from tests.test_sources_support import (
    check_types,
    find_table,
    read_in_fresh_process,
    read_table,
    through_parquet,
)

# name: (MariaDB type, SQL literals, expected Arrow type, expected values); NULL is appended.
CASES: dict[str, tuple[str, list[str], pa.DataType, list[object]]] = {
    "tinyint": ("TINYINT", ["-128", "127"], pa.int8(), [-128, 127]),
    "tinyint_unsigned": ("TINYINT UNSIGNED", ["255"], pa.uint8(), [255]),
    "tinyint1": ("TINYINT(1)", ["0", "1", "2"], pa.int8(), [0, 1, 2]),
    "boolean": ("BOOLEAN", ["true"], pa.int8(), [1]),
    "smallint": ("SMALLINT", ["-32768", "32767"], pa.int16(), [-32768, 32767]),
    "mediumint": ("MEDIUMINT", ["-8388608", "8388607"], pa.int32(), [-8388608, 8388607]),
    "int": ("INT", ["-2147483648", "2147483647"], pa.int32(), [-(2**31), 2**31 - 1]),
    "int_unsigned": ("INT UNSIGNED", ["4294967295"], pa.uint32(), [2**32 - 1]),
    "bigint": ("BIGINT", [str(-(2**63)), str(2**63 - 1)], pa.int64(), [-(2**63), 2**63 - 1]),
    "bigint_unsigned": ("BIGINT UNSIGNED", [str(2**64 - 1)], pa.uint64(), [2**64 - 1]),
    "float": ("FLOAT", ["1.5", "-1024.25"], pa.float32(), [1.5, -1024.25]),
    "double": ("DOUBLE", ["1e308", "5e-324"], pa.float64(), [1e308, 5e-324]),
    "decimal": ("DECIMAL(10,2)", ["-12345678.91"], pa.decimal128(10, 2), [Decimal("-12345678.91")]),
    "decimal_wide": (
        "DECIMAL(65,30)",
        ["12345678901234567890123456789012345.123456789012345678901234567890"],
        pa.decimal256(65, 30),
        [Decimal("12345678901234567890123456789012345.123456789012345678901234567890")],
    ),
    "varchar": ("VARCHAR(20)", ["'héllo ✓ 日本 🎉'", "''"], pa.string(), ["héllo ✓ 日本 🎉", ""]),
    "text": ("LONGTEXT", ["'é'"], pa.string(), ["é"]),
    "char": ("CHAR(3)", ["'ab'"], pa.string(), ["ab"]),
    "date": (
        "DATE",
        ["'1000-01-01'", "'9999-12-31'"],
        pa.date32(),
        [dt.date(1000, 1, 1), dt.date(9999, 12, 31)],
    ),
    "datetime": (
        "DATETIME(6)",
        ["'1000-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'"],
        pa.timestamp("us"),
        [dt.datetime(1000, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)],
    ),
    "timestamp": (
        "TIMESTAMP(6) NULL",
        ["'2020-06-01 10:00:00.5'"],
        pa.timestamp("us", tz="UTC"),
        [dt.datetime(2020, 6, 1, 10, 0, 0, 500000, tzinfo=dt.UTC)],
    ),
    "time": (
        "TIME(6)",
        ["'00:00:00'", "'23:59:59.999999'"],
        pa.time64("us"),
        [dt.time(0), dt.time(23, 59, 59, 999999)],
    ),
    "year": ("YEAR", ["1901", "2155"], pa.int16(), [1901, 2155]),
    "enum": ("ENUM('sad', 'happy')", ["'happy'"], pa.string(), ["happy"]),
    "set": ("SET('x', 'y', 'z')", ["'x,z'", "''"], pa.string(), ["x,z", ""]),
    "json": ("JSON", ['\'{"b": 1,  "a": [1, 2]}\''], pa.string(), ['{"b": 1,  "a": [1, 2]}']),
    "uuid": (
        "UUID",
        ["'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"],
        pa.string(),
        ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"],
    ),
    "blob": ("BLOB", ["x'00ff'", "''"], pa.binary(), [b"\x00\xff", b""]),
    "varbinary": ("VARBINARY(4)", ["x'01'"], pa.binary(), [b"\x01"]),
}


def execute(database: str | None, sql: str) -> None:
    conn = pymysql.connect(
        host=MARIADB_HOST,
        port=MARIADB_PORT,
        user=MARIADB_USER,
        database=database,
        autocommit=True,
        client_flag=CLIENT.MULTI_STATEMENTS,
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(sql)
            while cursor.nextset():
                pass
    finally:
        conn.close()


def config_for(database: str) -> SqlAlchemyConfig:
    return SqlAlchemyConfig(url=mariadb_url(database))


def test_every_type_family_round_trips_through_parquet(
    mariadb_database: str, tmp_path: Path
) -> None:
    execute(
        mariadb_database,
        "".join(
            f"CREATE TABLE t_{name} (v {sql_type});"
            + "".join(f"INSERT INTO t_{name} VALUES ({value});" for value in [*values, "NULL"])
            for name, (sql_type, values, _, _) in CASES.items()
        ),
    )
    cases = {name: (arrow, [*expected, None]) for name, (_, _, arrow, expected) in CASES.items()}
    check_types(config_for(mariadb_database), cases, tmp_path, schema_name=mariadb_database)


def test_discovery_lists_tables_and_views_of_the_named_database(mariadb_database: str) -> None:
    execute(
        mariadb_database,
        "CREATE TABLE t (z BIGINT NOT NULL, a TEXT, n DATE);CREATE VIEW v AS SELECT a, z FROM t;",
    )
    tables = discover(config_for(mariadb_database), None, connection_name="maria")
    assert [(t.schema_name, t.table_name) for t in tables] == [
        (mariadb_database, "t"),
        (mariadb_database, "v"),
    ]
    assert find_table(tables, mariadb_database, "t").arrow_schema == pa.schema(
        [pa.field("z", pa.int64(), nullable=False), ("a", pa.string()), ("n", pa.date32())]
    )
    assert find_table(tables, mariadb_database, "v").arrow_schema.names == ["a", "z"]


def test_thousands_of_tables_discover_in_seconds_in_a_few_queries(mariadb_database: str) -> None:
    execute(
        mariadb_database,
        "".join(
            f"CREATE TABLE t{i} (a INT, b VARCHAR(20), c DECIMAL(10,2)) ENGINE=MEMORY;"
            for i in range(2000)
        ),
    )
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        started = time.monotonic()
        tables = discover(config_for(mariadb_database), None, connection_name="maria")
        elapsed = time.monotonic() - started
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    assert len(tables) == 2000
    assert elapsed < 5
    assert len(statements) < 10


def test_an_empty_table_gives_a_valid_parquet_file(mariadb_database: str, tmp_path: Path) -> None:
    execute(mariadb_database, "CREATE TABLE e (a INT NOT NULL, b DECIMAL(12,3), c TIME)")
    config = config_for(mariadb_database)
    table = find_table(discover(config, None, connection_name="maria"), mariadb_database, "e")
    data = read_table(config, None, table)
    assert data.num_rows == 0
    assert through_parquet(data, tmp_path).schema.equals(table.arrow_schema)


def test_hostile_names_are_quoted(mariadb_database: str) -> None:
    names = ["x`; DROP TABLE y; --", 'x"; DROP TABLE y; --', "100%"]
    execute(
        mariadb_database,
        "CREATE TABLE y (a INT);"
        + "".join(
            f"CREATE TABLE `{n.replace('`', '``')}` (`we``ird` INT); "
            f"INSERT INTO `{n.replace('`', '``')}` VALUES (7);"
            for n in names
        ),
    )
    config = config_for(mariadb_database)
    tables = discover(config, None, connection_name="maria")
    for name in names:
        data = read_table(config, None, find_table(tables, mariadb_database, name))
        assert data.to_pylist() == [{"we`ird": 7}]
    assert len(discover(config, None, connection_name="maria")) == 4


def test_batches_are_streamed_in_the_requested_size(mariadb_database: str) -> None:
    execute(mariadb_database, "CREATE TABLE b AS SELECT seq AS i FROM seq_1_to_5000")
    config = config_for(mariadb_database)
    table = find_table(discover(config, None, connection_name="maria"), mariadb_database, "b")
    with open_reader(config, None, table, connection_name="maria", batch_rows=1024) as reader:
        sizes = [batch.num_rows for batch in reader]
    assert sum(sizes) == 5000 and max(sizes) <= 1024


@pytest.fixture
def mariadb_user(mariadb_database: str) -> Iterator[tuple[str, str]]:
    """A user with a password, allowed on the fresh database."""
    user, password = f"fc_{uuid.uuid4().hex[:8]}", "Right-Pa55%word"
    execute(
        None,
        f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}';"
        f"GRANT ALL ON `{mariadb_database}`.* TO '{user}'@'%';",
    )
    try:
        yield user, password
    finally:
        execute(None, f"DROP USER IF EXISTS '{user}'@'%'")


def test_a_password_is_used_and_a_wrong_one_is_an_auth_error(
    mariadb_database: str, mariadb_user: tuple[str, str]
) -> None:
    user, password = mariadb_user
    execute(mariadb_database, "CREATE TABLE t (a INT)")
    url = f"mysql+pymysql://{user}@{MARIADB_HOST}:{MARIADB_PORT}/{mariadb_database}"
    config = SqlAlchemyConfig(url=url, password={"env": "UNUSED"})
    assert [t.table_name for t in discover(config, password, connection_name="m")] == ["t"]
    wrong = "Wrong-Pa55%word"
    started = time.monotonic()
    with pytest.raises(SourceAuthError, match=r"'m'.*Access denied") as caught:
        discover(config, wrong, connection_name="m")
    assert time.monotonic() - started < 5
    assert wrong not in str(caught.value)
    assert "Wrong-Pa55%25word" not in str(caught.value)


def test_an_unreachable_server_fails_fast_without_the_password() -> None:
    config = SqlAlchemyConfig(url=f"mysql+pymysql://root@{MARIADB_HOST}:1/db")
    started = time.monotonic()
    with pytest.raises(SourceUnavailableError, match="'m'") as caught:
        discover(config, "Hunter2-secret", connection_name="m")
    assert time.monotonic() - started < 5
    assert "Hunter2-secret" not in str(caught.value)


def dropped_or_changed(mariadb_database: str, change: str) -> TableMetadata:
    execute(mariadb_database, "CREATE TABLE t (a INT, b TEXT); INSERT INTO t VALUES (1, 'x')")
    config = config_for(mariadb_database)
    table = find_table(discover(config, None, connection_name="m"), mariadb_database, "t")
    execute(mariadb_database, change)
    return table


def test_a_table_dropped_since_discovery(mariadb_database: str) -> None:
    table = dropped_or_changed(mariadb_database, "DROP TABLE t")
    with (
        pytest.raises(SourceTableNotFoundError, match=r"'m'.*does not exist"),
        open_reader(config_for(mariadb_database), None, table, connection_name="m"),
    ):
        pass


def test_a_column_retyped_since_discovery(mariadb_database: str) -> None:
    table = dropped_or_changed(mariadb_database, "ALTER TABLE t MODIFY a BIGINT")
    with (
        pytest.raises(SourceSchemaChangedError, match=r"'m'.*changed \['a'\]"),
        open_reader(config_for(mariadb_database), None, table, connection_name="m"),
    ):
        pass


def test_peak_memory_does_not_grow_with_the_table(mariadb_database: str) -> None:
    execute(
        mariadb_database,
        "".join(
            f"CREATE TABLE {name} AS SELECT seq AS i, repeat(md5(seq), 8) AS s, "
            f"now(6) AS t FROM seq_1_to_{rows};"
            for name, rows in (("small", 30_000), ("large", 300_000))  # large: ~90 MB of text
        ),
    )
    config = config_for(mariadb_database)
    small_rows, small_peak = read_in_fresh_process(config, "small")
    large_rows, large_peak = read_in_fresh_process(config, "large")
    assert (small_rows, large_rows) == (30_000, 300_000)
    assert large_peak - small_peak < 40, (small_peak, large_peak)
