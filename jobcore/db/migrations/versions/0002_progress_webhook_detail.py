"""Sub-stage progress of a running job; the last webhook delivery error.

Revision ID: 0002_progress_webhook_detail
Revises: 0001_initial
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_progress_webhook_detail"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("substages", sa.JSON()))
        batch.add_column(sa.Column("webhook_last_error", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("webhook_last_error")
        batch.drop_column("substages")
