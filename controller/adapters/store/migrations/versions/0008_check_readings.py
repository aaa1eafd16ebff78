"""each check keeps its reading of the serving version; each retrain what the decision knew of its window

A check's reading (the metric on the rows it read, its standard error, the span of those rows and
the label-free estimate of the same rows)
is what the next checks build the model's levels, decay and changes from
(``controller.signals.levels``). A check may date more than one change (comma-separated). A
retrain keeps the share of its training window that postdated the last change and the part of the
drop that stale window was expected to leave.

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-03 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controller.adapters.store.tables import UTCDateTime

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("checks") as batch:
        batch.add_column(sa.Column("metric_se", sa.Float(), nullable=True))
        batch.add_column(sa.Column("rows_from", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("rows_to", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("metric_estimate", sa.Float(), nullable=True))
        batch.alter_column("change_at", existing_type=sa.String(length=40), type_=sa.String(length=400))
    with op.batch_alter_table("retrain_runs") as batch:
        batch.add_column(sa.Column("fresh_share", sa.Float(), nullable=True))
        batch.add_column(sa.Column("residual_points", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("retrain_runs") as batch:
        batch.drop_column("residual_points")
        batch.drop_column("fresh_share")
    with op.batch_alter_table("checks") as batch:
        batch.alter_column("change_at", existing_type=sa.String(length=400), type_=sa.String(length=40))
        batch.drop_column("metric_estimate")
        batch.drop_column("rows_to")
        batch.drop_column("rows_from")
        batch.drop_column("metric_se")
