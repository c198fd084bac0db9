"""Alembic environment: runs on the engine handed over in config.attributes."""

from alembic import context

from catalog.engine import WRITE_OPTION
from catalog.schema import metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    connection.execution_options(**{WRITE_OPTION: True})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
