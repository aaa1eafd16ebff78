"""the cost ledger: imported billing spend by day, the imports, spend anomalies, billed retrain costs

``cost_ledger`` keeps a FOCUS export's rows summed per day and attributed field (model, team,
stage, run id, resource, service, account, charge category and class, currency); ``cost_imports``
says what each import read and which days of its source it replaced; ``spend_anomalies`` records
each anomalous day of a spend series once (its webhook is sent once). A retrain gets the cost its
bill gives (``billed_cost``) and where its ``actual_cost`` came from; a decision its ``details``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from controller.adapters.store.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cost_imports",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("files", sa.Text(), nullable=False),
        sa.Column("imported_at", UTCDateTime(), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("rows_stored", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=True),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("billed_total", sa.Float(), nullable=False),
        sa.Column("effective_total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "cost_ledger",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("team", sa.String(length=200), nullable=True),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.Column("resource_id", sa.Text(), nullable=True),
        sa.Column("service_category", sa.String(length=100), nullable=True),
        sa.Column("service_name", sa.String(length=200), nullable=True),
        sa.Column("sub_account", sa.String(length=200), nullable=True),
        sa.Column("charge_category", sa.String(length=30), nullable=True),
        sa.Column("charge_class", sa.String(length=30), nullable=True),
        sa.Column("currency", sa.String(length=10), nullable=True),
        sa.Column("billed_cost", sa.Float(), nullable=False),
        sa.Column("effective_cost", sa.Float(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["import_id"], ["cost_imports.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cost_ledger_source_day", "cost_ledger", ["source", "day"], unique=False)
    op.create_index("ix_cost_ledger_day_model", "cost_ledger", ["day", "model"], unique=False)
    op.create_index("ix_cost_ledger_run_id", "cost_ledger", ["run_id"], unique=False)
    op.create_table(
        "spend_anomalies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("series", sa.String(length=450), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("team", sa.String(length=200), nullable=True),
        sa.Column("stage", sa.String(length=20), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("expected", sa.Float(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("drivers", sa.JSON(), nullable=False),
        sa.Column("detected_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("series", "day"),
    )
    op.create_index("ix_spend_anomalies_day", "spend_anomalies", ["day"], unique=False)
    with op.batch_alter_table("retrain_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billed_cost", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("cost_source", sa.String(length=20), nullable=True))
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_column("details")
    with op.batch_alter_table("retrain_runs", schema=None) as batch_op:
        batch_op.drop_column("cost_source")
        batch_op.drop_column("billed_cost")
    op.drop_index("ix_spend_anomalies_day", table_name="spend_anomalies")
    op.drop_table("spend_anomalies")
    op.drop_index("ix_cost_ledger_run_id", table_name="cost_ledger")
    op.drop_index("ix_cost_ledger_day_model", table_name="cost_ledger")
    op.drop_index("ix_cost_ledger_source_day", table_name="cost_ledger")
    op.drop_table("cost_ledger")
    op.drop_table("cost_imports")
