"""Reachability of the real database servers the tests use, and fresh databases on them."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_HOST = os.environ.get("FRESHCACHE_TEST_PG_HOST", "127.0.0.1")
POSTGRES_PORT = int(os.environ.get("FRESHCACHE_TEST_PG_PORT", "5432"))
POSTGRES_USER = os.environ.get("FRESHCACHE_TEST_PG_USER", "postgres")
MARIADB_HOST = os.environ.get("FRESHCACHE_TEST_MYSQL_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("FRESHCACHE_TEST_MYSQL_PORT", "3306"))
MARIADB_USER = os.environ.get("FRESHCACHE_TEST_MYSQL_USER", "root")


def services_required() -> bool:
    return os.environ.get("FRESHCACHE_REQUIRE_SERVICES") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip when a server is down, unless FRESHCACHE_REQUIRE_SERVICES=1 makes that a failure."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port}"
    if services_required():
        pytest.fail(f"{message} and FRESHCACHE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def postgres_url(database: str, driver: str = "postgresql+psycopg") -> str:
    return f"{driver}://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


def mariadb_url(database: str) -> str:
    return f"mysql+pymysql://{MARIADB_USER}@{MARIADB_HOST}:{MARIADB_PORT}/{database}"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its name and drops it afterwards."""
    import psycopg

    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    name = f"fc_{uuid.uuid4().hex[:12]}"
    admin = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user={POSTGRES_USER} dbname=test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_mariadb_database() -> Iterator[str]:
    """A new, empty MariaDB database; yields its name and drops it afterwards."""
    import pymysql

    require_service("MariaDB", MARIADB_HOST, MARIADB_PORT)
    name = f"fc_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
