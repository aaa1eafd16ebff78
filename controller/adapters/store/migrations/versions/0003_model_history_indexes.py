"""a model's newest rows are found through (model, id) indexes

Every check reads its model's newest rows: up to 500 checks, the latest decision, 50 retrains and
20 estimation errors, each ``WHERE model = ... ORDER BY id DESC LIMIT n``. On an index of the
model alone the database reads every row the model ever had and sorts them, or walks the primary
key backwards past every other model's rows; either grows with the history. An index on
``(model, id)`` gives the newest rows first (and serves ``WHERE model = ...`` alone, so it replaces
the model-only index). Estimation errors are read per model and metric.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 03:05:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# table, the model-only index it had, the new index and its columns
INDEXES = [
    ("checks", "ix_checks_model", "ix_checks_model_id", ["model", "id"]),
    ("decisions", "ix_decisions_model", "ix_decisions_model_id", ["model", "id"]),
    ("retrain_runs", "ix_retrain_runs_model", "ix_retrain_runs_model_id", ["model", "id"]),
    ("outbox", "ix_outbox_model", "ix_outbox_model_id", ["model", "id"]),
    (
        "estimation_errors",
        "ix_estimation_errors_model",
        "ix_estimation_errors_model_metric_id",
        ["model", "metric", "id"],
    ),
]


def upgrade() -> None:
    for table, old, new, columns in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(new, columns, unique=False)
            batch_op.drop_index(old)


def downgrade() -> None:
    for table, old, new, _ in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(old, ["model"], unique=False)
            batch_op.drop_index(new)
