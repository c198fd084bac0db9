"""Create connections, tables and pending_deletions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from catalog.schema import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("source_type", sa.String(32), nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "tables",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "connection_id",
            sa.Integer,
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("schema_name", sa.Text, nullable=False),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("arrow_schema_json", sa.Text, nullable=False),
        sa.Column("parquet_path", sa.Text, nullable=True),
        sa.Column("last_sync", UTCDateTime, nullable=True),
        sa.UniqueConstraint(
            "connection_id", "schema_name", "table_name", name="uq_tables_identity"
        ),
    )
    op.create_index("ix_tables_parquet_path", "tables", ["parquet_path"])
    op.create_table(
        "pending_deletions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column("delete_after", UTCDateTime, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_pending_deletions_delete_after", "pending_deletions", ["delete_after"])


def downgrade() -> None:
    op.drop_table("pending_deletions")
    op.drop_index("ix_tables_parquet_path", table_name="tables")
    op.drop_table("tables")
    op.drop_table("connections")
