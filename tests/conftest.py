from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.services import fresh_mariadb_database, fresh_postgres_database

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture
def pg_database() -> Iterator[str]:
    """Name of a fresh PostgreSQL database, dropped after the test."""
    with fresh_postgres_database() as name:
        yield name


@pytest.fixture
def mariadb_database() -> Iterator[str]:
    """Name of a fresh MariaDB database, dropped after the test."""
    with fresh_mariadb_database() as name:
        yield name

# S3 (moto server on loopback) fixtures live in their own module.
pytest_plugins = ["tests.s3_fixtures"]
