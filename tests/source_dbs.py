"""Source databases for flow and API tests: a DuckDB or SQLite file, or a fresh PostgreSQL or
MariaDB database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import duckdb
import psycopg
import pymysql

from tests.services import (
    MARIADB_HOST,
    MARIADB_PORT,
    MARIADB_USER,
    POSTGRES_HOST,
    POSTGRES_PORT,
    POSTGRES_USER,
    fresh_mariadb_database,
    fresh_postgres_database,
    mariadb_url,
)


class SourceDB(Protocol):
    kind: str
    schema: str

    def execute(self, *statements: str) -> None: ...

    def registration(self) -> tuple[str, dict[str, Any]]:
        """(source_type, config) to register this database as a connection."""
        ...


class DuckDBSource:
    kind = "duckdb"
    schema = "main"

    def __init__(self, path: Path) -> None:
        self.path = path
        duckdb.connect(str(path)).close()

    def execute(self, *statements: str) -> None:
        # A connection per call: the refresh opens the file read-only in this same process.
        with duckdb.connect(str(self.path)) as con:
            for statement in statements:
                con.execute(statement)

    def registration(self) -> tuple[str, dict[str, Any]]:
        return "duckdb", {"path": str(self.path)}


class PostgresSource:
    kind = "postgres"
    schema = "public"

    def __init__(self, database: str) -> None:
        self.database = database

    def execute(self, *statements: str) -> None:
        dsn = (
            f"host={POSTGRES_HOST} port={POSTGRES_PORT} user={POSTGRES_USER} dbname={self.database}"
        )
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def registration(self) -> tuple[str, dict[str, Any]]:
        return "postgres", {
            "host": POSTGRES_HOST,
            "port": POSTGRES_PORT,
            "user": POSTGRES_USER,
            "database": self.database,
        }


class MariaDBSource:
    kind = "mariadb"

    def __init__(self, database: str) -> None:
        self.schema = database

    def execute(self, *statements: str) -> None:
        conn = pymysql.connect(
            host=MARIADB_HOST,
            port=MARIADB_PORT,
            user=MARIADB_USER,
            database=self.schema,
            autocommit=True,
            init_command="SET time_zone = '+00:00', sql_mode = 'ANSI_QUOTES'",
        )
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            conn.close()

    def registration(self) -> tuple[str, dict[str, Any]]:
        return "sqlalchemy", {"url": mariadb_url(self.schema)}


class SQLiteSource:
    kind = "sqlite"
    schema = "main"

    def __init__(self, path: Path) -> None:
        self.path = path

    def execute(self, *statements: str) -> None:
        with sqlite3.connect(self.path) as conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()

    def registration(self) -> tuple[str, dict[str, Any]]:
        return "sqlalchemy", {"url": f"sqlite:///{self.path}"}


@contextmanager
def source_db(kind: str, tmp_path: Path) -> Iterator[SourceDB]:
    """A new, empty source database of `kind`: duckdb, sqlite, postgres or mariadb."""
    number = len(list(tmp_path.iterdir()))
    if kind == "duckdb":
        yield DuckDBSource(tmp_path / f"source-{number}.duckdb")
    elif kind == "sqlite":
        yield SQLiteSource(tmp_path / f"source-{number}.sqlite")
    elif kind == "mariadb":
        with fresh_mariadb_database() as name:
            yield MariaDBSource(name)
    else:
        with fresh_postgres_database() as name:
            yield PostgresSource(name)


def create_numbered_table(source: SourceDB, name: str, rows: int) -> None:
    """A table of `rows` rows: id 1..rows and a label."""
    source.execute(
        f'CREATE TABLE {source.schema}."{name}" AS '
        f"SELECT i AS id, 'row ' || i AS label FROM generate_series(1, {rows}) AS g(i)"
    )
