"""Settings from the environment and the `freshcache migrate` / `cleanup` commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.settings import Settings, SettingsError, load_settings


def test_defaults_work_with_nothing_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("FRESHCACHE_"):
            monkeypatch.delenv(name)
    settings = load_settings()
    assert settings.deletion_grace_seconds == 60
    assert settings.cleanup_interval_seconds == 3600
    assert settings.refresh_concurrency == 4
    assert settings.execution == "inline"
    assert settings.api_token is None
    assert settings.resolved_catalog_url.startswith("sqlite:///")
    assert settings.resolved_catalog_url.endswith(".freshcache/catalog.db")
    assert settings.resolved_cache_url.endswith(".freshcache/cache")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("FRESHCACHE_DELETION_GRACE_SECONDS", "-5"),
        ("FRESHCACHE_EXECUTION", "cluster"),
        ("FRESHCACHE_CATALOG_URL", "not a url"),
        ("FRESHCACHE_CATALOG_URL", "mysql://root@localhost/x"),
        ("FRESHCACHE_CACHE_URL", "s3://"),
        ("FRESHCACHE_REFRESH_CONCURRENCY", "0"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings()


def test_postgresql_urls_use_psycopg_3() -> None:
    settings = Settings(catalog_url="postgresql://u@db:5432/cat")
    assert settings.resolved_catalog_url == "postgresql+psycopg://u@db:5432/cat"


def run_cli(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env={**os.environ, "FRESHCACHE_DATA_DIR": str(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_migrate_command_reports_what_it_did(tmp_path: Path) -> None:
    first = run_cli("migrate", data_dir=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "migrated from empty to 0003" in first.stdout
    second = run_cli("migrate", data_dir=tmp_path)
    assert "already at revision 0003" in second.stdout


def test_a_bad_setting_stops_a_command_with_a_clear_message(tmp_path: Path) -> None:
    result = run_cli("migrate", data_dir=tmp_path, FRESHCACHE_EXECUTION="cluster")
    assert result.returncode == 2
    assert "FRESHCACHE_EXECUTION" in result.stderr
    assert "Traceback" not in result.stderr
