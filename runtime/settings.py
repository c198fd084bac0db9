"""Settings from the environment (prefix FRESHCACHE_), validated once at start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from catalog.engine import normalize_catalog_url

ENV_PREFIX = "FRESHCACHE_"


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(Path(".freshcache"), description="Where local state lives.")
    catalog_url: str | None = Field(
        None, description="Catalog database URL (SQLite or PostgreSQL)."
    )
    cache_url: str | None = Field(
        None, description="Cache root: a directory or s3://bucket/prefix."
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint for a non-AWS S3.")
    deletion_grace_seconds: float = Field(60, ge=0, description="Wait before deleting old files.")
    cleanup_interval_seconds: float = Field(
        3600,
        gt=0,
        description="Safety schedule of the cleanup; deletions also get a run when they fall due.",
    )
    orphan_min_age_seconds: float = Field(3600, ge=0, description="Orphan sweep safety age.")
    refresh_concurrency: int = Field(4, ge=1, le=64, description="Fetches at once per connection.")
    refresh_retries: int = Field(2, ge=0, description="Retries of a transient source failure.")
    refresh_retry_delay_seconds: float = Field(2, ge=0, description="First retry back-off.")
    progress_interval_seconds: float = Field(
        1, ge=0, description="A fetch's progress artifact: first after, then at most every."
    )
    execution: Literal["inline", "deployment"] = Field("inline", description="How /refresh runs.")
    api_token: SecretStr | None = Field(None, description="Bearer token for the webhook.")
    query_row_limit: int = Field(10_000, ge=1, description="Rows returned by POST /query at most.")
    query_byte_limit: int = Field(
        64 * 1024 * 1024, ge=1024, description="Bytes of a POST /query response body at most."
    )
    query_timeout_seconds: float = Field(
        30, gt=0, le=86_400, description="Time limit of a query; a request may ask for less."
    )
    query_memory_mb: int = Field(
        default_factory=lambda: default_query_memory_mb(),
        ge=64,
        description="Memory all running queries share (DuckDB spills to disk beyond it).",
    )
    query_spill_mb: int = Field(
        default_factory=lambda data: 4 * data["query_memory_mb"],
        ge=0,
        description="Disk the running queries may spill to, under the data dir.",
    )
    query_concurrency: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        le=256,
        description="Queries running at once; more wait in line.",
    )
    query_queue_seconds: float = Field(
        10, ge=0, le=3600, description="How long a query waits for a turn before a 503."
    )
    freshness_lead_seconds: float = Field(
        30, ge=0, description="How early (at most half a target) a table is refreshed."
    )
    freshness_safety_interval_seconds: float = Field(
        3600, gt=0, description="Safety schedule of freshcache-freshness while targets exist."
    )
    compact_after_files: int = Field(
        20, ge=1, description="Files an append or merge table may have before it is compacted."
    )

    @field_validator("catalog_url")
    @classmethod
    def _valid_catalog_url(cls, value: str | None) -> str | None:
        return None if value is None else normalize_catalog_url(value)

    @field_validator("cache_url")
    @classmethod
    def _valid_cache_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parsed = urlparse(value)
        if parsed.scheme == "s3" and not parsed.netloc:
            raise ValueError("an s3:// cache URL needs a bucket: s3://bucket/prefix")
        if parsed.scheme not in ("", "file", "s3"):
            raise ValueError(f"the cache is a local directory or s3://, not {parsed.scheme}://")
        return value

    @property
    def resolved_catalog_url(self) -> str:
        return self.catalog_url or f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"

    @property
    def resolved_cache_url(self) -> str:
        return self.cache_url or str((self.data_dir / "cache").resolve())


def default_query_memory_mb() -> int:
    """A quarter of the machine's memory: refreshes and the rest of the process need theirs."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(64, total // 4 // 2**20)


def load_settings() -> Settings:
    """Read the environment; an invalid value raises SettingsError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        from sources.config import plain_message  # here: settings load before any source

        problems = [
            f"{ENV_PREFIX}{'_'.join(str(p) for p in error['loc']).upper()}: {plain_message(error)}"
            for error in exc.errors()
        ]
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
