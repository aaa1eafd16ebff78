"""The audit store's tables (SQLAlchemy models); the schema itself is made by the migrations.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
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
    change_at: Mapped[str | None] = mapped_column(String(40))
    """When the decay began, as the check's change detector dated it (ISO 8601)."""
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
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    champion_version: Mapped[str | None] = mapped_column(String(50))
    challenger_version: Mapped[str | None] = mapped_column(String(50))
    champion_metric: Mapped[float | None] = mapped_column(Float)
    challenger_metric: Mapped[float | None] = mapped_column(Float)
    recovered: Mapped[bool | None] = mapped_column(sa.Boolean)
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


def month_of(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m")
