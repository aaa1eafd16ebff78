"""The console's reads of the store: the fleet, a model's timeline, costs from the retrains, check
spans and overrides, each one statement for every model it shows (a page of 1,000 models reads the
store a few times, not once per model)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from controller.adapters.store.records import CheckSpan, FleetRecord, LastRetrain, RetrainCost, TimelinePoint
from controller.adapters.store.sql import NEWEST_CHUNK, _newest_rows, _rows_as, _table
from controller.adapters.store.tables import BudgetRow, CheckRow, DecisionRow, OverrideRow, RetrainRow, UTCDateTime


class ConsoleReads:
    """Console reads of the store (see the module docstring)."""

    engine: sa.Engine
    _reading: Callable[[], AbstractContextManager[sa.Connection]]

    def fleet(self, models: Sequence[str]) -> dict[str, FleetRecord]:
        """Each named model's newest decision joined with the check that made it, and the status of
        its newest check; models never checked are left out.

        On PostgreSQL one statement: a lateral join takes each model's newest decision and newest
        check one index step each (1,000 models in milliseconds, where statements of a few models
        each cost a round trip and a plan apiece). Elsewhere in statements of ``NEWEST_CHUNK`` models."""
        names = list(dict.fromkeys(models))
        if not names:
            return {}
        with self._reading() as conn:
            rows: list[tuple[Any, ...]]
            if self.engine.dialect.name == "postgresql":
                rows = [tuple(row) for row in conn.execute(_fleet_lateral(), {"names": names})]
            else:
                rows = []
                for at in range(0, len(names), NEWEST_CHUNK):
                    chunk = names[at : at + NEWEST_CHUNK]
                    chunk += [chunk[-1]] * (NEWEST_CHUNK - len(chunk))  # one statement for every chunk
                    params = {f"m{i}": name for i, name in enumerate(chunk)}
                    rows.extend(tuple(row) for row in conn.execute(_fleet_statement(), params))
                status = dict(_newest_rows(conn, CheckRow, ("model", "status"), names))
                rows = [(*row, status.get(row[0])) for row in rows]
                decided = {row[0] for row in rows}
                rows += [(m, *[None] * 11, st) for m, st in status.items() if m not in decided]
        return {row[0]: FleetRecord(*row) for row in rows if row[2] is not None or row[12] is not None}

    def timeline(self, model: str, limit: int = 500) -> list[TimelinePoint]:
        """The model's newest ``limit`` checks, oldest first, each with its decision's action and loss
        per day; the metric's interval is read out of the stored signals by the database (the whole
        signals of 500 checks cost more to read than the page)."""
        with self._reading() as conn:
            rows = conn.execute(_timeline_statement(), {"model": model, "limit": limit}).all()
        return [TimelinePoint(*row) for row in reversed(rows)]

    def newest_signals(self, model: str) -> tuple[int, dict[str, Any]] | None:
        """``(check id, signals)`` of the model's newest finished check."""
        with self._reading() as conn:
            row = conn.execute(
                sa.select(CheckRow.id, CheckRow.signals)
                .where(CheckRow.model == model, CheckRow.status == "done")
                .order_by(CheckRow.id.desc())
                .limit(1)
            ).first()
        return None if row is None else (int(row[0]), dict(row[1] or {}))

    def last_retrains(self) -> dict[str, LastRetrain]:
        """Every model's newest retrain: when and its state (one ``GROUP BY``: a retrain table holds
        few rows per model; two columns, not row objects, which cost more to make than the query)."""
        with self._reading() as conn:
            newest = sa.select(sa.func.max(RetrainRow.id)).group_by(RetrainRow.model)
            rows = conn.execute(
                sa.select(RetrainRow.model, RetrainRow.created_at, RetrainRow.state).where(RetrainRow.id.in_(newest))
            )
            return {model: LastRetrain(model, at, state) for model, at, state in rows}

    def spend_by_scope(self, months: Sequence[str]) -> dict[tuple[str, str], float]:
        """``(scope, month) -> spent`` of the budgets of ``months`` (``model:x``, ``team:y``)."""
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(BudgetRow.scope, BudgetRow.month, BudgetRow.spent).where(BudgetRow.month.in_(list(months)))
            )
            return {(scope, month): float(spent or 0.0) for scope, month, spent in rows}

    def retrain_costs(self, since: datetime | None = None) -> list[RetrainCost]:
        """Every retrain's estimated and billed cost (created since ``since``), oldest first."""
        with self._reading() as conn:
            q = sa.select(
                RetrainRow.model,
                RetrainRow.created_at,
                RetrainRow.state,
                RetrainRow.cost_estimate,
                RetrainRow.actual_cost,
                RetrainRow.cost_anomaly,
            ).order_by(RetrainRow.id)
            if since is not None:
                q = q.where(RetrainRow.created_at >= since)
            return [RetrainCost(*row) for row in conn.execute(q)]

    def check_spans(self) -> dict[str, CheckSpan]:
        """First and last finished check and how many, per model."""
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(
                    CheckRow.model, sa.func.min(CheckRow.started_at), sa.func.max(CheckRow.started_at), sa.func.count()
                )
                .where(CheckRow.status == "done")
                .group_by(CheckRow.model)
            )
            return {m: CheckSpan(m, _utc(first), _utc(last), int(n)) for m, first, last, n in rows}

    def overrides_in_force(self, now: datetime, model: str | None = None) -> list[OverrideRow]:
        """Approvals and vetoes not expired nor consumed, newest first."""
        with self._reading() as conn:
            q = (
                sa.select(_table(OverrideRow))
                .where(OverrideRow.expires_at > now, OverrideRow.consumed_at.is_(None))
                .order_by(OverrideRow.id.desc())
            )
            if model is not None:
                q = q.where(OverrideRow.model == model)
            return _rows_as(OverrideRow, conn.execute(q))


def _utc(value: datetime) -> datetime:
    """An aggregate (``min``/``max``) of a datetime column skips the column type's conversion."""
    if isinstance(value, str):  # SQLite hands an aggregate back as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@functools.cache
def _fleet_statement() -> Any:
    """The newest decision of ``NEWEST_CHUNK`` models, each joined with its check."""
    d, c = _table(DecisionRow), _table(CheckRow)
    newest = [
        sa.select(sa.func.max(DecisionRow.id)).where(DecisionRow.model == sa.bindparam(f"m{i}")).scalar_subquery()
        for i in range(NEWEST_CHUNK)
    ]
    return (
        sa.select(
            d.c.model,
            d.c.version,
            d.c.action,
            d.c.reasons,
            d.c.summary,
            d.c.numbers,
            d.c.signal_source,
            d.c.decided_at,
            c.c.metric,
            c.c.metric_value,
            c.c.metric_baseline,
            c.c.drift_share,
        )
        .select_from(d.outerjoin(c, c.c.id == d.c.check_id))
        .where(d.c.id.in_(newest))
    )


@functools.cache
def _fleet_lateral() -> Any:
    """:meth:`Store.fleet` on PostgreSQL: the named models' newest decision, its check, and their
    newest check's status, in one statement."""
    from sqlalchemy.dialects.postgresql import ARRAY

    return (
        sa.text(
            """
            SELECT m.name, d.version, d.action, d.reasons, d.summary, d.numbers, d.signal_source, d.decided_at,
                   c.metric, c.metric_value, c.metric_baseline, c.drift_share, lc.status
            FROM unnest(:names) AS m(name)
            LEFT JOIN LATERAL (
                SELECT * FROM decisions WHERE decisions.model = m.name ORDER BY decisions.id DESC LIMIT 1
            ) AS d ON true
            LEFT JOIN checks AS c ON c.id = d.check_id
            LEFT JOIN LATERAL (
                SELECT checks.status FROM checks WHERE checks.model = m.name ORDER BY checks.id DESC LIMIT 1
            ) AS lc ON true
            """
        )
        .bindparams(sa.bindparam("names", type_=ARRAY(sa.String)))
        .columns(
            sa.column("name", sa.String),
            sa.column("version", sa.String),
            sa.column("action", sa.String),
            sa.column("reasons", sa.JSON),
            sa.column("summary", sa.Text),
            sa.column("numbers", sa.JSON),
            sa.column("signal_source", sa.String),
            sa.column("decided_at", UTCDateTime),
            sa.column("metric", sa.String),
            sa.column("metric_value", sa.Float),
            sa.column("metric_baseline", sa.Float),
            sa.column("drift_share", sa.Float),
            sa.column("status", sa.String),
        )
    )


@functools.cache
def _timeline_statement() -> Any:
    d, c = _table(DecisionRow), _table(CheckRow)
    return (
        sa.select(
            c.c.id,
            c.c.started_at,
            c.c.status,
            c.c.version,
            c.c.metric,
            # the level the decision read (the stored reading is one period's measurement)
            c.c.signals["current"].as_float(),
            c.c.signals["source"].as_string(),
            c.c.metric_baseline,
            c.c.signals["current_low"].as_float(),
            c.c.signals["current_high"].as_float(),
            c.c.drift_share,
            d.c.action,
            d.c.numbers["loss_per_day"].as_float(),
        )
        .select_from(c.outerjoin(d, d.c.check_id == c.c.id))
        .where(c.c.model == sa.bindparam("model"))
        .order_by(c.c.id.desc())
        .limit(sa.bindparam("limit"))
    )
