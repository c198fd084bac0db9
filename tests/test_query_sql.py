"""SQL-only behaviour of run_query (no table, no source): rejections, errors, values, limits."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from query import QueryEngine, QueryError, QueryRejectedError, QueryResult
from runtime.container import Runtime, build_runtime
from runtime.settings import Settings
from tasks.refresh_table import fetch_for_query
from tests.querying import run_query

ROW_LIMIT = 5


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    settings = Settings(
        data_dir=tmp_path / "data",
        catalog_url=f"sqlite:///{tmp_path / 'catalog.db'}",
        cache_url=str(tmp_path / "cache"),
        query_row_limit=ROW_LIMIT,
    )
    runtime = build_runtime(settings)  # creates the data directory, as every process does
    yield runtime
    runtime.close()


def only_value(runtime: Runtime, sql: str) -> object:
    result = run_query(runtime, sql)
    assert result.row_count == 1 and len(result.columns) == 1, result
    return result.rows[0][0]


# -- read-only --------------------------------------------------------------------------------

NOT_A_QUERY = [
    "INSERT INTO t VALUES (1)",
    "CREATE TABLE t AS SELECT 1",
    "CREATE VIEW v AS SELECT 1",
    "DROP TABLE t",
    "UPDATE t SET x = 1",
    "DELETE FROM t",
    "SELECT 1; SELECT 2",
    "SELECT 1; DROP TABLE t",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "PRAGMA version",
    "CALL pragma_version()",
    "EXPLAIN SELECT 1",
    "CHECKPOINT",
    "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 's')",
    "PIVOT (SELECT 1 AS a, 2 AS b) ON a USING sum(b)",
]


@pytest.mark.parametrize("sql", NOT_A_QUERY)
def test_statements_other_than_one_query_are_rejected(sql: str, runtime: Runtime) -> None:
    with pytest.raises(QueryRejectedError):
        run_query(runtime, sql)


@pytest.mark.parametrize(
    "template",
    [
        "COPY (SELECT 42) TO '{out}'",
        "COPY (SELECT 42) TO '{out}' (FORMAT parquet)",
        "ATTACH '{out}' AS stolen",
        "EXPORT DATABASE '{dir}'",
        "SELECT * FROM read_csv('{secret}')",
        "SELECT * FROM read_parquet('{secret}')",
        "SELECT * FROM read_json('{secret}')",
        "SELECT * FROM read_text('{secret}')",
        "SELECT * FROM read_blob('{secret}')",
        "SELECT * FROM glob('{dir}/*')",
        "SELECT * FROM parquet_metadata('{secret}')",
        "SELECT * FROM sniff_csv('{secret}')",
        "SELECT (SELECT count(*) FROM read_text('{secret}')) AS n",
        "WITH x AS (SELECT * FROM read_csv('{secret}')) SELECT * FROM x",
        "SELECT * FROM read_csv('http://127.0.0.1:9/x.csv')",
        "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
        "SELECT * FROM duckdb_extensions()",
    ],
)
def test_files_network_and_extensions_are_out_of_reach(
    template: str, tmp_path: Path, runtime: Runtime
) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    out = tmp_path / "out"
    sql = template.format(secret=secret, out=out, dir=tmp_path)
    before = sorted(tmp_path.rglob("*"))

    with pytest.raises(QueryRejectedError) as raised:
        run_query(runtime, sql)

    assert "hunter2" not in str(raised.value)
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


def test_the_shared_database_is_locked_down(runtime: Runtime) -> None:
    with QueryEngine(runtime, fetch_for_query) as engine:
        rows = engine.database.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
            "'lock_configuration', 'autoload_known_extensions', 'autoinstall_known_extensions', "
            "'allow_community_extensions', 'allowed_directories', 'temp_directory')"
        ).fetchall()
        spill = str(engine.spill_directory)
    settings = dict(rows)
    assert settings["enable_external_access"] == "false"
    assert settings["lock_configuration"] == "true"
    assert settings["autoload_known_extensions"] == "false"
    assert settings["autoinstall_known_extensions"] == "false"
    assert settings["allow_community_extensions"] == "false"
    assert settings["temp_directory"] == spill
    # The cache root, and the spill directory DuckDB adds for itself: nothing else.
    assert settings["allowed_directories"] == f"[{runtime.storage.root}/, {spill}/]"


INTROSPECTION = [
    "SELECT * FROM duckdb_settings()",
    "SELECT * FROM duckdb_settings",
    "SELECT current_setting('temp_directory')",
    "SELECT current_setting('allowed_directories') AS d",
    "SELECT * FROM duckdb_temporary_files()",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM duckdb_views()",
    "SELECT * FROM duckdb_views",
    "SELECT * FROM duckdb_secrets()",
    "SELECT * FROM duckdb_memory()",
    "SELECT * FROM pragma_database_list",
    "SELECT * FROM pragma_show('x')",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM information_schema.views",
    "SELECT * FROM system.main.duckdb_settings()",
    "SELECT * FROM pg_settings",
    "SELECT * FROM pg_catalog.pg_views",
    "SELECT * FROM sqlite_master",
    "SELECT pg_get_viewdef(1)",
    "SELECT getenv('HOME')",
    "SELECT current_query()",
    "SHOW TABLES",
    "SHOW ALL TABLES",
    "SELECT * FROM (SUMMARIZE SELECT 1)",
    "SUMMARIZE SELECT 1",
    "SELECT * FROM query('SELECT * FROM duckdb_settings()')",
    "SELECT * FROM query_table('duckdb_settings')",
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
    "SELECT * FROM histogram(duckdb_settings, name)",
    # A WITH name is visible only after its definition: here duckdb_settings is DuckDB's.
    "WITH a AS (SELECT * FROM duckdb_settings), duckdb_settings AS (SELECT 1) SELECT * FROM a",
    "WITH duckdb_settings AS (SELECT * FROM duckdb_settings) SELECT * FROM duckdb_settings",
    "SELECT * FROM (WITH s AS (SELECT 1) SELECT 1), s",
]


@pytest.mark.parametrize("sql", INTROSPECTION)
def test_settings_paths_and_catalog_internals_are_refused(sql: str, runtime: Runtime) -> None:
    with pytest.raises(QueryRejectedError) as raised:
        run_query(runtime, sql)
    assert str(runtime.settings.data_dir) not in str(raised.value)


def test_python_variables_are_not_scanned(runtime: Runtime) -> None:
    secret_table = {"x": [42]}  # a replacement scan would find this by name
    assert secret_table
    with pytest.raises(QueryError, match="secret_table"):
        run_query(runtime, "SELECT * FROM secret_table")


def test_read_only_query_forms_are_accepted(runtime: Runtime) -> None:
    assert run_query(runtime, "VALUES (1, 'a'), (2, 'b')").rows == [[1, "a"], [2, "b"]]
    assert only_value(runtime, "WITH x AS (SELECT 41 AS n) SELECT n + 1 FROM x") == 42
    assert only_value(runtime, "FROM range(3) SELECT sum(range)") == 3
    assert only_value(runtime, "SELECT 1 -- a trailing comment") == 1
    assert only_value(runtime, "SELECT 1;") == 1
    recursive = "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) "
    assert only_value(runtime, recursive + "SELECT sum(n) FROM t") == 6
    assert (
        only_value(runtime, "WITH a AS (SELECT 2 AS n), b AS (SELECT n * 3 AS n FROM a) FROM b")
        == 6
    )
    assert only_value(runtime, "SELECT count(*) FROM generate_series(1, 4), unnest([1, 2])") == 8


# -- errors -----------------------------------------------------------------------------------


def test_syntax_error_carries_duckdbs_message(runtime: Runtime) -> None:
    with pytest.raises(QueryError, match="syntax error") as raised:
        run_query(runtime, "SELEC 1")
    assert not isinstance(raised.value, QueryRejectedError)


def test_binder_error_carries_duckdbs_message(runtime: Runtime) -> None:
    with pytest.raises(QueryError, match='"nope"') as raised:
        run_query(runtime, "SELECT nope FROM range(3)")
    assert "Binder Error" in str(raised.value)
    assert not isinstance(raised.value, QueryRejectedError)


def test_runtime_error_carries_duckdbs_message(runtime: Runtime) -> None:
    with pytest.raises(QueryError, match="Could not convert"):
        run_query(runtime, "SELECT CAST('abc' AS INTEGER)")


def test_empty_sql_is_an_error(runtime: Runtime) -> None:
    with pytest.raises(QueryError):
        run_query(runtime, "  -- nothing\n")


def test_an_unqualified_table_is_a_sql_error(runtime: Runtime) -> None:
    with pytest.raises(QueryError, match="events"):
        run_query(runtime, "SELECT * FROM events")


# -- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("CAST(12.50 AS DECIMAL(10, 2))", "12.50"),
        ("CAST(0 AS DECIMAL(18, 10))", "0.0000000000"),
        (
            "CAST('123456789012345678901234567890.123' AS DECIMAL(38, 3))",
            "123456789012345678901234567890.123",
        ),
        ("CAST(170141183460469231731687303715884105727 AS HUGEINT)", 2**127 - 1),
        ("TIMESTAMP '2024-01-02 03:04:05.123456'", "2024-01-02T03:04:05.123456"),
        ("TIMESTAMPTZ '2024-01-02 03:04:05+02'", "2024-01-02T01:04:05+00:00"),
        ("DATE '2024-01-02'", "2024-01-02"),
        ("TIME '03:04:05.5'", "03:04:05.500000"),
        ("INTERVAL '2 days 3 hours 4 minutes 5.25 seconds'", "P2DT3H4M5.25S"),
        ("-INTERVAL '1 second'", "-P0DT0H0M1S"),
        ("'\\xAA\\x00'::BLOB", "qgA="),
        (
            "'6f1c5c8e-0d2a-4b7e-9f3a-1c2d3e4f5a6b'::UUID",
            "6f1c5c8e-0d2a-4b7e-9f3a-1c2d3e4f5a6b",
        ),
        ("CAST('NaN' AS DOUBLE)", "NaN"),
        ("CAST('inf' AS FLOAT)", "Infinity"),
        ("CAST('-inf' AS DOUBLE)", "-Infinity"),
        ("1.5::DOUBLE", 1.5),
        ("NULL", None),
        ("true", True),
        ("[1, 2, NULL]", [1, 2, None]),
        ("[1, 2, 3]::INTEGER[3]", [1, 2, 3]),
        ("{'a': 1, 'b': [1.5::DOUBLE, 'nan'::DOUBLE]}", {"a": 1, "b": [1.5, "NaN"]}),
        ("MAP {1: 'x', 2: 'y'}", {"1": "x", "2": "y"}),
        ("MAP {DATE '2024-01-02': 1}", {"2024-01-02": 1}),
        ("[DATE '2024-01-02']", ["2024-01-02"]),
        ("'{\"a\": 1}'::JSON", '{"a": 1}'),
        ("'0101'::BIT", "0101"),
    ],
)
def test_values_are_json_safe(expression: str, expected: object, runtime: Runtime) -> None:
    result = run_query(runtime, f"SELECT {expression} AS v")
    assert result.rows == [[expected]]
    assert_json_strict(result)


def assert_json_strict(result: QueryResult) -> None:
    json.dumps(result.model_dump(), allow_nan=False)


def test_duplicate_column_names_are_kept(runtime: Runtime) -> None:
    result = run_query(runtime, "SELECT 1 AS a, 2 AS a")
    assert (result.columns, result.rows) == (["a", "a"], [[1, 2]])


# -- row limit --------------------------------------------------------------------------------


def test_default_row_limit_comes_from_the_settings(runtime: Runtime) -> None:
    result = run_query(runtime, "SELECT * FROM range(100)")
    assert (result.row_count, result.truncated) == (ROW_LIMIT, True)
    assert [row[0] for row in result.rows] == list(range(ROW_LIMIT))


def test_exactly_the_limit_is_not_truncated(runtime: Runtime) -> None:
    result = run_query(runtime, "SELECT * FROM range(3)", row_limit=3)
    assert (result.row_count, result.truncated) == (3, False)


def test_explicit_row_limit(runtime: Runtime) -> None:
    result = run_query(runtime, "SELECT * FROM range(10) ORDER BY range DESC", row_limit=2)
    assert result.rows == [[9], [8]]
    assert result.truncated is True


def test_a_huge_result_is_not_materialized(runtime: Runtime) -> None:
    started = time.perf_counter()
    result = run_query(
        runtime, "SELECT range, repeat('x', 1000) FROM range(10_000_000_000)", row_limit=3
    )
    assert result.row_count == 3 and result.truncated
    assert time.perf_counter() - started < 10  # streamed: ten billion rows would take ages


def test_execution_time_is_reported(runtime: Runtime) -> None:
    started = time.perf_counter()
    result = run_query(runtime, "SELECT 1")
    assert 0 <= result.execution_time_ms <= (time.perf_counter() - started) * 1000 + 1
