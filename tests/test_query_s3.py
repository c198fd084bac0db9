"""Queries over an S3 cache (moto): reads pass through fsspec under the file-access lock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from query import QueryRejectedError
from runtime.container import build_runtime
from runtime.settings import Settings
from tasks.refresh_table import refresh_table_now
from tasks.schema import refresh_connection_schema
from tests.querying import run_query
from tests.source_dbs import DuckDBSource, create_numbered_table
from tests.world import World


@pytest.fixture
def s3_world(
    prefect_server: None, tmp_path: Path, s3_cache_url: str, s3_endpoint_url: str
) -> Iterator[World]:
    runtime = build_runtime(
        Settings(
            data_dir=tmp_path / "data",
            catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}",
            cache_url=s3_cache_url,
            s3_endpoint_url=s3_endpoint_url,
        )
    )
    yield World(runtime, DuckDBSource(tmp_path / "source.duckdb"), tmp_path)
    runtime.close()


def test_query_over_an_s3_cache(s3_world: World) -> None:
    create_numbered_table(s3_world.source, "events", 3)
    create_numbered_table(s3_world.source, "other", 2)
    conn_id = s3_world.register("src")
    refresh_connection_schema(s3_world.runtime, conn_id)
    sql = 'SELECT id FROM "src"."main"."events" ORDER BY id'

    assert run_query(s3_world.runtime, sql).rows == [
        [1],
        [2],
        [3],
    ]  # lazily fetched into S3, read back
    path = s3_world.catalog.get_table(conn_id, "main", "events").parquet_path
    assert path is not None and path.startswith("s3://")
    assert s3_world.cache_files() == {path}

    s3_world.source.execute("INSERT INTO main.events VALUES (4, 'row 4')")
    refresh_table_now(s3_world.runtime, conn_id, "main", "events")
    assert run_query(s3_world.runtime, sql).rows == [[1], [2], [3], [4]]

    refresh_table_now(s3_world.runtime, conn_id, "main", "other")
    other = s3_world.catalog.get_table(conn_id, "main", "other").parquet_path
    with pytest.raises(QueryRejectedError):  # only the files of the tables it names
        run_query(
            s3_world.runtime, f'SELECT * FROM "src"."main"."events", read_parquet(\'{other}\')'
        )
