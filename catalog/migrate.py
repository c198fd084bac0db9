"""Alembic migrations of the catalog, applied at start and by `freshcache migrate`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works: it only has to be the same in every process that migrates this catalog.
POSTGRES_MIGRATION_LOCK = 7_210_533_117


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> tuple[str | None, str | None]:
    """Apply pending migrations; returns (revision before, revision after)."""
    before = current_revision(engine)
    if before == head_revision(engine):
        return before, before
    if engine.dialect.name == "postgresql":
        # Several workers may start at once: one migrates, the others wait and find nothing to do.
        with engine.connect() as lock_conn:
            lock_conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": POSTGRES_MIGRATION_LOCK})
            try:
                command.upgrade(alembic_config(engine), "head")
            finally:
                lock_conn.execute(
                    text("SELECT pg_advisory_unlock(:k)"), {"k": POSTGRES_MIGRATION_LOCK}
                )
                lock_conn.commit()
    else:
        command.upgrade(alembic_config(engine), "head")
    return before, current_revision(engine)
