"""The bench data: the 9-column table in PostgreSQL and DuckDB, and the many-table sources.

The table has a bigint, an int, a numeric(12,2), two texts, a timestamptz, a boolean, a double
and a date; every column but the id is NULL in 5% of the rows. The same SQL builds it in both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg

TABLE = "bench_rows"
SMALL_TABLE = "bench_rows_small"

_VALUES = [
    ("qty", "(i % 1000)::INT"),
    ("price", "((i % 100000) * 0.01)::NUMERIC(12, 2)"),
    ("name", "md5(i::TEXT)"),
    ("tag", "'tag' || (i % 50)::TEXT"),
    ("created", "TIMESTAMPTZ '2020-01-01 00:00:00+00' + i * INTERVAL '1 second'"),
    ("flag", "i % 2 = 0"),
    ("ratio", "i / 7.0::DOUBLE PRECISION"),
    ("day", "DATE '2020-01-01' + (i % 3650)::INT"),
]


def table_sql(name: str, rows: int, series: str) -> str:
    """CREATE TABLE `name` AS the bench rows; `series` yields i = 1..rows as a FROM item."""
    columns = ["i::BIGINT AS id"] + [
        f"CASE WHEN (i * 7 + {n}) % 20 = 0 THEN NULL ELSE {value} END AS {column}"
        for n, (column, value) in enumerate(_VALUES, start=1)
    ]
    return f"CREATE TABLE {name} AS SELECT {', '.join(columns)} FROM {series.format(rows=rows)}"


@dataclass(frozen=True)
class Postgres:
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    admin_database: str = "postgres"

    def connect(self, database: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname=database or self.admin_database,
            autocommit=True,
        )

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def source_config(self, database: str) -> dict[str, object]:
        """A freshcache `postgres` connection config."""
        return {"host": self.host, "port": self.port, "user": self.user, "database": database}

    @contextmanager
    def database(self, label: str) -> Iterator[str]:
        """A new database named fc_bench_<run>_<label>, dropped on exit."""
        name = f"fc_bench_{uuid.uuid4().hex[:8]}_{label}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield name
        finally:
            with self.connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill_postgres_rows(pg: Postgres, database: str, rows: int, small_rows: int) -> None:
    """The bench table at `rows` rows and at `small_rows` rows."""
    series = "generate_series(1, {rows}) AS s(i)"
    with pg.connect(database) as conn:
        for name, count in ((TABLE, rows), (SMALL_TABLE, small_rows)):
            conn.execute(table_sql(name, count, series))
            conn.execute(f"VACUUM ANALYZE {name}")


def fill_postgres_slow_views(pg: Postgres, database: str, views: int, seconds: float) -> None:
    """`views` views of 10 rows that each take `seconds` to answer (pg_sleep)."""
    with pg.connect(database) as conn:
        for n in range(views):
            conn.execute(
                f"CREATE VIEW slow_{n:03d} AS SELECT g::BIGINT AS id, 'row ' || g AS label "
                f"FROM pg_sleep({seconds}), generate_series(1, 10) AS g"
            )


def fill_postgres_many_tables(pg: Postgres, database: str, tables: int) -> None:
    """`tables` empty tables of three columns each, 500 per transaction (each holds locks)."""
    with pg.connect(database) as conn:
        for first in range(1, tables + 1, 500):
            last = min(first + 499, tables)
            conn.execute(
                f"DO $$ BEGIN FOR n IN {first}..{last} LOOP EXECUTE format("
                "'CREATE TABLE t_%s (id BIGINT PRIMARY KEY, name TEXT, created TIMESTAMPTZ)', n);"
                " END LOOP; END $$"
            )


def make_duckdb_rows(path: Path, rows: int) -> None:
    with closing(duckdb.connect(str(path))) as con:
        con.execute(table_sql(TABLE, rows, "range(1, {rows} + 1) AS s(i)"))


def make_duckdb_tiny_tables(path: Path, tables: int) -> None:
    """`tables` tables of 10 rows of the bench columns."""
    with closing(duckdb.connect(str(path))) as con:
        for n in range(tables):
            con.execute(table_sql(f"tiny_{n:03d}", 10, "range(1, {rows} + 1) AS s(i)"))
