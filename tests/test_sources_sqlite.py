from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from sources import (
    SourceTableNotFoundError,
    SourceUnavailableError,
    SqlAlchemyConfig,
    discover,
    open_reader,
)
from tests.test_sources_support import find_table, read_table, through_parquet


def make_db(path: Path, sql: str) -> SqlAlchemyConfig:
    with sqlite3.connect(path) as conn:
        conn.executescript(sql)
    conn.close()
    return SqlAlchemyConfig(url=f"sqlite:///{path}")


def test_the_main_schema_is_discovered_and_read(tmp_path: Path) -> None:
    config = make_db(
        tmp_path / "s.db",
        "CREATE TABLE t (i INTEGER NOT NULL, r REAL, s TEXT, b BLOB, d DATE, ts DATETIME,"
        " n NUMERIC(10, 2), u);"
        "INSERT INTO t VALUES (9223372036854775807, 1.5, 'é 🎉', x'00ff', '2020-01-02',"
        " '2020-01-02 03:04:05.000006', 12.5, 'any');"
        "INSERT INTO t VALUES (1, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"
        "CREATE VIEW v AS SELECT s FROM t;",
    )
    tables = discover(config, None, connection_name="lite")
    assert [(t.schema_name, t.table_name) for t in tables] == [("main", "t"), ("main", "v")]
    table = find_table(tables, "main", "t")
    assert table.arrow_schema == pa.schema(
        [
            pa.field("i", pa.int64(), nullable=False),
            ("r", pa.float64()),
            ("s", pa.string()),
            ("b", pa.binary()),
            ("d", pa.date32()),
            ("ts", pa.timestamp("us")),
            ("n", pa.decimal128(10, 2)),
            ("u", pa.string()),
        ]
    )
    data = through_parquet(read_table(config, None, table), tmp_path)
    assert data.to_pylist()[0] == {
        "i": 2**63 - 1,
        "r": 1.5,
        "s": "é 🎉",
        "b": b"\x00\xff",
        "d": dt.date(2020, 1, 2),
        "ts": dt.datetime(2020, 1, 2, 3, 4, 5, 6),
        "n": Decimal("12.50"),
        "u": "any",
    }


def test_a_missing_file_is_an_error_and_stays_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope.db"
    with pytest.raises(SourceUnavailableError, match=r"'lite'.*does not exist"):
        discover(SqlAlchemyConfig(url=f"sqlite:///{path}"), None, connection_name="lite")
    assert not path.exists()


def test_a_table_dropped_since_discovery(tmp_path: Path) -> None:
    config = make_db(tmp_path / "s.db", "CREATE TABLE gone (a INTEGER)")
    table = find_table(discover(config, None, connection_name="lite"), "main", "gone")
    make_db(tmp_path / "s.db", "DROP TABLE gone")
    with (
        pytest.raises(SourceTableNotFoundError, match="'lite'"),
        open_reader(config, None, table, connection_name="lite"),
    ):
        pass
