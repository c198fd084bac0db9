"""Refresh policies and incremental snapshots: a base file plus delta files and a high-water mark.

Revision ID: 0003
Revises: 0002

Existing tables keep their single file (`tables.parquet_path`) and get no policy: they refresh
in full, as before.
"""

import sqlalchemy as sa
from alembic import op

from catalog.schema import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "connection_policies",
        sa.Column(
            "connection_id",
            sa.Integer,
            sa.ForeignKey("connections.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("policy_json", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "table_policies",
        sa.Column(
            "table_id", sa.Integer, sa.ForeignKey("tables.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("policy_json", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "table_increments",
        sa.Column(
            "table_id", sa.Integer, sa.ForeignKey("tables.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("cursor_column", sa.Text, nullable=False),
        sa.Column("primary_key_json", sa.Text, nullable=False),
        sa.Column("high_water_mark", sa.Text, nullable=True),
        sa.Column("full_started_at", UTCDateTime, nullable=False),
        sa.Column("schema_changed", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "snapshot_files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "table_id", sa.Integer, sa.ForeignKey("tables.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("path", sa.Text, nullable=False, unique=True),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("table_id", "seq", name="uq_snapshot_files_order"),
    )


def downgrade() -> None:
    for table in ("snapshot_files", "table_increments", "table_policies", "connection_policies"):
        op.drop_table(table)
