from __future__ import annotations

import pytest

from sources import (
    DuckDBConfig,
    PasswordRef,
    PostgresConfig,
    SourceConfigError,
    SqlAlchemyConfig,
    parse_source_config,
)


def test_each_source_type_parses_to_its_model() -> None:
    assert parse_source_config("duckdb", {"path": "/x.duckdb"}) == DuckDBConfig(path="/x.duckdb")
    pg = parse_source_config(
        "postgres",
        {"host": "h", "user": "u", "database": "d", "password": {"env": "PGPASS"}},
    )
    assert isinstance(pg, PostgresConfig)
    assert (pg.port, pg.connect_timeout, pg.password) == (5432, 10, PasswordRef(env="PGPASS"))
    generic = parse_source_config("sqlalchemy", {"url": "mysql+pymysql://root@h/db"})
    assert isinstance(generic, SqlAlchemyConfig)


@pytest.mark.parametrize(
    ("source_type", "config", "field"),
    [
        ("postgres", {"host": "h", "user": "u", "database": "d", "port": "x"}, "port"),
        ("postgres", {"host": "h", "user": "u"}, "database"),
        ("postgres", {"host": "h", "user": "u", "database": "d", "sslmode": "on"}, "sslmode"),
        ("duckdb", {"path": "/x", "typo": 1}, "typo"),
        ("duckdb", {}, "path"),
        ("sqlalchemy", {"url": "not a url"}, "url"),
        ("oracle", {"path": "/x"}, "source_type"),
        ("duckdb", {"path": "/x", "password": {"env": "A", "secret": "b"}}, "password"),
        ("postgres", {"host": "h", "user": "u", "database": "d", "password": {}}, "password"),
    ],
)
def test_an_invalid_config_names_the_field(
    source_type: str, config: dict[str, object], field: str
) -> None:
    with pytest.raises(SourceConfigError, match=field):
        parse_source_config(source_type, config, connection_name="conn1")


def test_the_error_names_the_connection() -> None:
    with pytest.raises(SourceConfigError) as caught:
        parse_source_config("duckdb", {}, connection_name="conn1")
    assert caught.value.connection_name == "conn1"
    assert "conn1" in str(caught.value)


def test_a_password_in_the_url_is_rejected_without_repeating_it() -> None:
    with pytest.raises(SourceConfigError, match="`password`") as caught:
        parse_source_config("sqlalchemy", {"url": "mysql+pymysql://root:Hunter2x@h/db"})
    assert "Hunter2x" not in str(caught.value)


def test_a_literal_password_is_not_a_valid_reference() -> None:
    with pytest.raises(SourceConfigError, match="password") as caught:
        parse_source_config(
            "postgres", {"host": "h", "user": "u", "database": "d", "password": "Hunter2x"}
        )
    assert "Hunter2x" not in str(caught.value)


@pytest.mark.parametrize(
    ("include", "exclude", "covered"),
    [
        ([], [], {"public.orders", "public.order_lines", "sales.orders", "hr.pay", "a.b.c"}),
        (["public"], [], {"public.orders", "public.order_lines"}),
        (["public.*"], ["*.order_*"], {"public.orders"}),
        (["*.orders"], [], {"public.orders", "sales.orders"}),
        ([], ["hr", "public.order?lines"], {"public.orders", "sales.orders", "a.b.c"}),
        (["a.b.*"], [], {"a.b.c"}),  # the first dot separates schema from table
        (["Public"], [], set()),  # case-sensitive, as the names are
        (["[ps]*.orders"], [], {"public.orders", "sales.orders"}),
    ],
)
def test_include_and_exclude_patterns(
    include: list[str], exclude: list[str], covered: set[str]
) -> None:
    config = parse_source_config("duckdb", {"path": "/x", "include": include, "exclude": exclude})
    tables = [("public", "orders"), ("public", "order_lines"), ("sales", "orders"), ("hr", "pay")]
    tables.append(("a", "b.c"))
    assert {f"{s}.{t}" for s, t in tables if config.covers(s, t)} == covered
