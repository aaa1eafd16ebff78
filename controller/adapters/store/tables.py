"""The audit store's tables (SQLAlchemy models); the schema itself is made by the migrations.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, Date, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "models"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    registered_model: Mapped[str] = mapped_column(String(300))
    owner: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    business_purpose: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class CheckRow(Base):
    __tablename__ = "checks"
    __table_args__ = (sa.Index("ix_checks_model_id", "model", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    request_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    """Identifies one requested check (model + schedule slot); a redelivered task reuses it."""
    version: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="running")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    n_rows: Mapped[int | None] = mapped_column(Integer)
    drift_share: Mapped[float | None] = mapped_column(Float)
    metric: Mapped[str | None] = mapped_column(String(50))
    metric_value: Mapped[float | None] = mapped_column(Float)
    metric_source: Mapped[str | None] = mapped_column(String(20))
    metric_baseline: Mapped[float | None] = mapped_column(Float)
    change_at: Mapped[str | None] = mapped_column(String(400))
    """The changes in the data this check dated (comma-separated ISO 8601 times)."""
    metric_se: Mapped[float | None] = mapped_column(Float)
    """Standard error of ``metric_value`` when it is a realized reading."""
    rows_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """The realized reading's rows: from here (its period's start) ..."""
    rows_to: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """... to here (the newest row whose label was trusted)."""
    metric_estimate: Mapped[float | None] = mapped_column(Float)
    """The label-free estimate of the realized reading's rows (what later estimates are moved from)."""
    signals: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class DecisionRow(Base):
    __tablename__ = "decisions"
    __table_args__ = (sa.Index("ix_decisions_model_id", "model", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    check_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id"), unique=True)
    model: Mapped[str] = mapped_column(String(200))
    version: Mapped[str | None] = mapped_column(String(50))
    action: Mapped[str] = mapped_column(String(10))
    reasons: Mapped[list[str]] = mapped_column(JSON)
    summary: Mapped[str] = mapped_column(Text)
    numbers: Mapped[dict[str, Any]] = mapped_column(JSON)
    signal_source: Mapped[str] = mapped_column(String(20))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retry_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    needs_approval: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """What the decision was based on beyond its numbers, e.g. ``cost_source`` (``ledger`` or ``config``)."""


class RetrainRow(Base):
    __tablename__ = "retrain_runs"
    __table_args__ = (sa.Index("ix_retrain_runs_model_id", "model", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    model: Mapped[str] = mapped_column(String(200))
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))
    state: Mapped[str] = mapped_column(String(20), default="queued")
    cost_estimate: Mapped[float | None] = mapped_column(Float)
    cost_low: Mapped[float | None] = mapped_column(Float)
    cost_high: Mapped[float | None] = mapped_column(Float)
    actual_cost: Mapped[float | None] = mapped_column(Float)
    training_hours: Mapped[float | None] = mapped_column(Float)
    cost_anomaly: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    billed_cost: Mapped[float | None] = mapped_column(Float)
    """What the billing export charged for resources tagged with this retrain's MLflow run id."""
    cost_source: Mapped[str | None] = mapped_column(String(20))
    """Where ``actual_cost`` comes from: ``runtime`` (training hours x rate) or ``billed``."""
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    champion_version: Mapped[str | None] = mapped_column(String(50))
    challenger_version: Mapped[str | None] = mapped_column(String(50))
    champion_metric: Mapped[float | None] = mapped_column(Float)
    challenger_metric: Mapped[float | None] = mapped_column(Float)
    recovered: Mapped[bool | None] = mapped_column(sa.Boolean)
    fresh_share: Mapped[float | None] = mapped_column(Float)
    """Share of the training window after the last change in the data, as the decision saw it."""
    residual_points: Mapped[float | None] = mapped_column(Float)
    """The part of the drop that window was expected to leave (points)."""
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OutboxRow(Base):
    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_model_id", "model", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(20))
    """``mlflow_tags`` or ``webhook``."""
    model: Mapped[str] = mapped_column(String(200))
    dedupe_key: Mapped[str] = mapped_column(String(300), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    """``pending``, ``delivered``, ``dead`` or ``suppressed`` (digest)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationRow(Base):
    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(sa.Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OverrideRow(Base):
    __tablename__ = "overrides"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    """``approve`` or ``veto``."""
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BudgetRow(Base):
    __tablename__ = "budgets"
    __table_args__ = (UniqueConstraint("scope", "month"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(250))
    """``model:<name>`` or ``team:<name>``."""
    month: Mapped[str] = mapped_column(String(7))
    spent: Mapped[float] = mapped_column(Float, default=0.0)


class EstimationErrorRow(Base):
    __tablename__ = "estimation_errors"
    __table_args__ = (sa.Index("ix_estimation_errors_model_metric_id", "model", "metric", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(50))
    check_id: Mapped[int | None] = mapped_column(ForeignKey("checks.id"))
    estimated: Mapped[float] = mapped_column(Float)
    realized: Mapped[float] = mapped_column(Float)
    abs_error: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CostImportRow(Base):
    """One ``retrainctl costs import``: what it read and which days of its source it replaced."""

    __tablename__ = "cost_imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    files: Mapped[str] = mapped_column(Text)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    rows_read: Mapped[int] = mapped_column(Integer)
    rows_stored: Mapped[int] = mapped_column(Integer)
    first_day: Mapped[date | None] = mapped_column(Date)
    last_day: Mapped[date | None] = mapped_column(Date)
    days: Mapped[int] = mapped_column(Integer)
    billed_total: Mapped[float] = mapped_column(Float)
    effective_total: Mapped[float] = mapped_column(Float)


class LedgerRow(Base):
    """Spend of one day, summed over the billing rows that share every attributed field."""

    __tablename__ = "cost_ledger"
    __table_args__ = (
        sa.Index("ix_cost_ledger_source_day", "source", "day"),
        sa.Index("ix_cost_ledger_day_model", "day", "model"),
        sa.Index("ix_cost_ledger_run_id", "run_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("cost_imports.id"))
    source: Mapped[str] = mapped_column(String(100))
    day: Mapped[date] = mapped_column(Date)
    model: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(20))
    run_id: Mapped[str | None] = mapped_column(String(64))
    resource_id: Mapped[str | None] = mapped_column(Text)
    service_category: Mapped[str | None] = mapped_column(String(100))
    service_name: Mapped[str | None] = mapped_column(String(200))
    sub_account: Mapped[str | None] = mapped_column(String(200))
    charge_category: Mapped[str | None] = mapped_column(String(30))
    charge_class: Mapped[str | None] = mapped_column(String(30))
    currency: Mapped[str | None] = mapped_column(String(10))
    billed_cost: Mapped[float] = mapped_column(Float)
    effective_cost: Mapped[float] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer)
    """Billing rows (or their share of the day, for a charge period over several days) summed here."""


class SpendAnomalyRow(Base):
    """A day of a spend series the detector found anomalous; recorded once per series and day."""

    __tablename__ = "spend_anomalies"
    __table_args__ = (UniqueConstraint("series", "day"), sa.Index("ix_spend_anomalies_day", "day"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    series: Mapped[str] = mapped_column(String(450))
    """``model:<model>:<stage>``, ``team:<team>`` or ``unattributed``."""
    model: Mapped[str | None] = mapped_column(String(200))
    team: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str | None] = mapped_column(String(20))
    day: Mapped[date] = mapped_column(Date)
    cost: Mapped[float] = mapped_column(Float)
    expected: Mapped[float] = mapped_column(Float)
    score: Mapped[float] = mapped_column(Float)
    drivers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def month_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")
