"""checks keep the two history fields the forecast reads as columns

A check's forecast reads up to 500 earlier checks of its model; reading ``baseline`` and
``change_at`` out of each one's signals document made the database parse every document.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 14:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metric_baseline", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("change_at", sa.String(length=40), nullable=True))
    checks = sa.table(
        "checks",
        sa.column("signals", sa.JSON()),
        sa.column("metric_baseline", sa.Float()),
        sa.column("change_at", sa.String()),
    )
    op.execute(
        checks.update()
        .where(checks.c.signals.is_not(None))
        .values(
            metric_baseline=checks.c.signals["baseline"].as_float(),
            change_at=checks.c.signals["change_at"].as_string(),
        )
    )


def downgrade() -> None:
    with op.batch_alter_table("checks", schema=None) as batch_op:
        batch_op.drop_column("change_at")
        batch_op.drop_column("metric_baseline")
