"""Record when the live file's source snapshot started, so freshness never goes backwards.

Revision ID: 0002
Revises: 0001

Tables cached before this revision keep NULL (unknown): the next refresh of each replaces it.
"""

import sqlalchemy as sa
from alembic import op

from catalog.schema import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tables") as batch:
        batch.add_column(sa.Column("snapshot_started_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tables") as batch:
        batch.drop_column("snapshot_started_at")
