"""The audit store: every model, check, decision, retrain, notification and outbox item, in SQL.

SQLAlchemy 2 with any URL (SQLite by default, Postgres in production). The schema is created by
the Alembic migrations in ``controller/adapters/store/migrations`` (``Store.migrate``).

Concurrency rules that the workers rely on:
- a retrain is created at most once per idempotency key (unique constraint);
- budgets are charged with one conditional UPDATE per scope inside one transaction, so two
  workers can never spend past a cap together;
- outbox items are claimed by moving ``next_attempt_at`` forward in a conditional UPDATE, so two
  deliverers never send the same item at the same time.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from controller.adapters.store.console import ConsoleReads
from controller.adapters.store.ledger import LedgerStore
from controller.adapters.store.records import (
    IN_FLIGHT,
    CheckPoint,
    CheckSummary,
    ModelSnapshot,
    to_jsonable,
)
from controller.adapters.store.sql import _newest_rows, _rows_as, _table
from controller.adapters.store.tables import (
    Base,
    BudgetRow,
    CheckRow,
    DecisionRow,
    EstimationErrorRow,
    ModelRow,
    NotificationRow,
    OutboxRow,
    OverrideRow,
    RetrainRow,
    month_of,
    utcnow,
)
from controller.core.decision import Decision


class Store(ConsoleReads, LedgerStore):
    """All reads and writes of the audit store. One instance per process; thread-safe sessions."""

    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        self.url = url
        self.engine = sa.create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._pinned = threading.local()  # this thread's connection inside one_connection()
        # The model rows this process wrote, so a check does not rewrite an unchanged one.
        self._model_rows: dict[str, tuple[str, str | None, str | None, str | None]] = {}

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def migrate_if_needed(self) -> None:
        """:meth:`migrate` only when the schema is not at the newest revision (a read-only command
        starts faster without loading Alembic)."""
        newest = _head_revision(Path(__file__).parent / "migrations" / "versions")
        try:
            with self.engine.connect() as conn:
                current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.DBAPIError:
            current = None
        if current != newest:
            self.migrate()

    def dispose(self) -> None:
        self.engine.dispose()

    def _pinned_conn(self) -> sa.Connection | None:
        """This thread's connection inside :meth:`one_connection`, else None."""
        return getattr(self._pinned, "conn", None)

    @contextmanager
    def one_connection(self) -> Iterator[None]:
        """Run every transaction of this thread inside on one pooled connection: it is checked out
        (and pinged) once, instead of once per transaction. A check opens three transactions."""
        if self._pinned_conn() is not None:
            yield
            return
        with self.engine.connect() as conn:
            self._pinned.conn = conn
            try:
                yield
            finally:
                self._pinned.conn = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        conn = self._pinned_conn()
        s = self._sessions() if conn is None else self._sessions(bind=conn)
        with s, s.begin():
            yield s
        self._model_rows.update(s.info.get("model_rows", {}))  # only once the transaction committed

    @contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        """One transaction of Core reads: on the connection a check pinned (see
        :meth:`one_connection`), else on a pooled one."""
        conn = self._pinned_conn()
        if conn is None:
            with self.engine.connect() as own, own.begin():
                yield own
            return
        with conn.begin():
            yield conn

    # models -------------------------------------------------------------------------------
    def _upsert_model(
        self,
        s: Session,
        name: str,
        registered_model: str,
        owner: str | None,
        team: str | None,
        business_purpose: str | None,
    ) -> None:
        fields = (registered_model, owner, team, business_purpose)
        if self._model_rows.get(name) == fields:
            return
        s.info.setdefault("model_rows", {})[name] = fields
        row = s.get(ModelRow, name)
        if row is None:
            s.add(
                ModelRow(
                    name=name,
                    registered_model=registered_model,
                    owner=owner,
                    team=team,
                    business_purpose=business_purpose,
                )
            )
        else:
            row.registered_model, row.owner, row.team = registered_model, owner, team
            row.business_purpose = business_purpose

    # checks and decisions -------------------------------------------------------------------
    def start_check(
        self,
        model: str,
        now: datetime,
        request_key: str | None = None,
        model_row: tuple[str, str | None, str | None, str | None] | None = None,
    ) -> tuple[int, bool]:
        """Open a check; returns ``(check_id, already_done)``.

        With a ``request_key``, a check that already finished is not redone (a redelivered task),
        and one left ``running``/``abandoned``/``failed`` by an earlier attempt is reopened.
        ``model_row`` (registered model, owner, team, business purpose) is upserted in the same
        transaction.
        """
        with self.session() as s:
            if model_row is not None:
                self._upsert_model(s, model, *model_row)
            values = {"model": model, "status": "running", "started_at": now, "request_key": request_key}
            insert = self._insert_or_skip(CheckRow, "request_key", returning=True)
            if request_key is not None and insert is not None:
                # the usual case, a new key, in one statement; a known key is looked up below
                new_id = s.connection().execute(insert, values).scalar()
                if new_id is not None:
                    return int(new_id), False
            if request_key is not None:
                row = s.scalar(sa.select(CheckRow).where(CheckRow.request_key == request_key))
                if row is not None:
                    if row.status == "done":
                        return row.id, True
                    row.status, row.started_at, row.error = "running", now, None
                    return row.id, False
            return self._insert(s, CheckRow, **values), False

    def decision_for_check(self, check_id: int) -> DecisionRow | None:
        with self.session() as s:
            return s.scalar(sa.select(DecisionRow).where(DecisionRow.check_id == check_id))

    def abandon_stale_checks(self, model: str, older_than: datetime) -> int:
        """Mark checks left ``running`` by a dead worker as ``abandoned``; returns how many."""
        with self.session() as s:
            res = s.execute(
                sa.update(CheckRow)
                .where(CheckRow.model == model, CheckRow.status == "running", CheckRow.started_at < older_than)
                .values(status="abandoned", error="worker stopped before finishing")
            )
            return int(res.rowcount or 0)  # type: ignore[attr-defined]

    def fail_check(self, check_id: int, error: str, now: datetime) -> None:
        with self.session() as s:
            row = s.get_one(CheckRow, check_id)
            row.status, row.error, row.finished_at = "failed", error[:4000], now

    def finish_check(
        self,
        check_id: int,
        version: str | None,
        signals: dict[str, Any],
        decision: Decision,
        outbox: Sequence[tuple[str, str, dict[str, Any]]],
        now: datetime,
        retrain: dict[str, Any] | None = None,
        estimation_error: tuple[str, float, float] | None = None,
    ) -> tuple[int, int | None]:
        """Store the check's result, its decision, its outbox items and its retrain in one transaction.

        ``outbox`` holds ``(kind, dedupe_key, payload)``; a duplicate key is skipped. ``retrain``
        (fields of a retrain run, with ``idempotency_key``) is created with the decision, so a
        decision to retrain and the retrain itself cannot be separated by a crash.
        ``estimation_error`` is ``(metric, estimated, realized)`` of this check's window. Returns
        ``(decision_id, retrain_id)``.
        """
        # Core statements on tables, not ORM objects: this runs once per check, for every model.
        dialect = self.engine.dialect
        checks = _table(CheckRow)
        with self.session() as s:
            conn = s.connection()
            done = {
                "id_": check_id,
                "status": "done",
                "finished_at": now,
                "version": version,
                "signals": to_jsonable(signals),
                "n_rows": signals.get("n_rows"),
                "drift_share": signals.get("drift_share"),
                "metric": signals.get("metric"),
                "metric_value": _finite(signals.get("reading")),
                "metric_source": signals.get("reading_source"),
                "metric_baseline": _finite(signals.get("baseline")),
                "change_at": signals.get("change_at"),
                "metric_se": _finite(signals.get("reading_se")),
                "rows_from": _time(signals.get("rows_from")),
                "rows_to": _time(signals.get("rows_to")),
                "metric_estimate": _finite(signals.get("reading_estimate")),
            }
            if dialect.update_returning:
                model = conn.execute(_finish_update(returning=True), done).scalar_one()
            else:
                conn.execute(_finish_update(returning=False), done)
                model = conn.execute(sa.select(checks.c.model).where(checks.c.id == check_id)).scalar_one()
            decision_id = self._insert(
                s,
                DecisionRow,
                check_id=check_id,
                model=model,
                version=version,
                action=decision.action.value,
                reasons=decision.reason_codes,
                summary=decision.summary,
                numbers=to_jsonable(decision.numbers),
                signal_source=decision.signal_source,
                decided_at=decision.decided_at,
                retry_after=decision.retry_after,
                needs_approval=decision.needs_approval,
                details=to_jsonable(decision.details) if decision.details else None,
            )
            retrain_id = None
            if retrain is not None:
                retrain_id = self._insert(
                    s, RetrainRow, model=model, decision_id=decision_id, created_at=now, updated_at=now, **retrain
                )
            extra = {"decision_id": decision_id, "retrain_id": retrain_id}
            rows = [_outbox_values(model, kind, key, {**payload, **extra}, now) for kind, key, payload in outbox]
            if rows:
                self._insert_new_outbox(s, rows)
            if estimation_error is not None:
                metric, estimated, realized = estimation_error
                abs_error = abs(estimated - realized)
                values = {"model": model, "metric": metric, "check_id": check_id, "abs_error": abs_error}
                conn.execute(
                    sa.insert(_table(EstimationErrorRow)).values(estimated=estimated, realized=realized, **values)
                )
            return decision_id, retrain_id

    def _insert(self, s: Session, table: type[Base], **values: Any) -> int:
        """Insert one row; its id."""
        if self.engine.dialect.insert_returning:
            return int(s.connection().execute(_insert_statement(table, returning=True), values).scalar_one())
        key = s.connection().execute(_insert_statement(table, returning=False), values).inserted_primary_key
        assert key is not None, "an insert without RETURNING gives its primary key"
        return int(key[0])

    def _insert_or_skip(self, table: type[Base], unique: str, returning: bool = False) -> Any:
        """``INSERT ... ON CONFLICT (unique) DO NOTHING`` (``RETURNING id``) where the database
        has it, else None; the columns come with the values at execution."""
        return _insert_or_skip_statement(self.engine.dialect.name, table, unique, returning)

    def _insert_new_outbox(self, s: Session, rows: list[dict[str, Any]]) -> None:
        """Insert outbox rows whose dedupe key is not there yet (a check redone after a crash)."""
        insert = self._insert_or_skip(OutboxRow, "dedupe_key")
        if insert is not None:
            s.connection().execute(insert, rows)
            return
        keys = [r["dedupe_key"] for r in rows]
        known = set(s.scalars(sa.select(OutboxRow.dedupe_key).where(OutboxRow.dedupe_key.in_(keys))))
        fresh = [r for r in rows if r["dedupe_key"] not in known]
        if fresh:
            s.connection().execute(sa.insert(_table(OutboxRow)), fresh)

    def enqueue(self, model: str, kind: str, key: str, payload: dict[str, Any], now: datetime) -> None:
        """Add one outbox item outside a decision (retrain progress, cost anomalies); a key already
        there (enqueued concurrently, or before a crash) is kept once."""
        try:
            with self.session() as s:
                self._insert_new_outbox(s, [_outbox_values(model, kind, key, payload, now)])
        except IntegrityError:
            pass  # a database without ON CONFLICT: the same key was enqueued concurrently

    def decisions(self, model: str | None = None, limit: int = 50) -> list[DecisionRow]:
        with self.session() as s:
            q = sa.select(DecisionRow).order_by(DecisionRow.id.desc()).limit(limit)
            if model is not None:
                q = q.where(DecisionRow.model == model)
            return list(s.scalars(q))

    def latest_decisions(self, models: Sequence[str] | None = None) -> dict[str, DecisionRow]:
        """Each model's newest decision: of ``models`` (see :func:`_newest_rows`), else of every model."""
        with self.session() as s:
            columns = tuple(_table(DecisionRow).c.keys())
            return {r.model: r for r in _rows_as(DecisionRow, _newest_rows(s, DecisionRow, columns, models))}

    def latest_decision(self, model: str) -> DecisionRow | None:
        with self.session() as s:
            return s.scalar(self._latest_decision_q(model))

    @staticmethod
    def _latest_decision_q(model: str) -> sa.Select[DecisionRow]:
        return sa.select(DecisionRow).where(DecisionRow.model == model).order_by(DecisionRow.id.desc()).limit(1)

    def model_snapshot(
        self,
        model: str,
        team: str | None,
        now: datetime,
        retrain_limit: int = 50,
        metric: str | None = None,
        history_limit: int = 0,
    ) -> ModelSnapshot:
        """The model's recent retrains (newest first), latest decision, active overrides, whether a
        retrain is in flight, and this month's spend of the model and its team: one transaction
        instead of one per read (a check reads them all). With ``history_limit``, also its newest
        finished checks (``check_history``) and, with ``metric``, the estimate's past errors."""
        q = _snapshot_queries()
        args = {"model": model, "now": now, "month": month_of(now)}
        # Core reads, not the ORM's: the few rows are then made row objects outside any session.
        with self._reading() as conn:
            retrains = _rows_as(RetrainRow, conn.execute(q["retrains"], {**args, "limit": retrain_limit}))
            in_flight: int | None = sum(r.state in IN_FLIGHT for r in retrains)
            if len(retrains) >= retrain_limit:  # not all of them: count in the store
                in_flight = conn.execute(
                    sa.select(sa.func.count()).where(RetrainRow.model == model, RetrainRow.state.in_(IN_FLIGHT))
                ).scalar()
            active = _rows_as(OverrideRow, conn.execute(q["overrides"], args))
            budgets = conn.execute(q["budgets"], {**args, "team": f"team:{team}"})
            spent = {scope: amount for scope, amount in budgets}
            latest = _rows_as(DecisionRow, conn.execute(q["latest_decision"], args))
            return ModelSnapshot(
                retrains=retrains,
                latest_decision=latest[0] if latest else None,
                veto=next((o for o in active if o.kind == "veto"), None),
                approval=next((o for o in active if o.kind == "approve"), None),
                retrain_in_flight=bool(in_flight),
                spent_this_month=float(spent.get(f"model:{model}") or 0.0),
                team_spent_this_month=float(spent.get(f"team:{team}") or 0.0) if team else 0.0,
                history=self._check_history(conn, model, history_limit) if history_limit else [],
                estimation_errors=[
                    float(v)
                    for v in conn.execute(q["estimation_errors"], {**args, "metric": metric, "limit": 20}).scalars()
                ]
                if metric
                else [],
            )

    def checks(self, model: str, limit: int = 50) -> list[CheckRow]:
        with self.session() as s:
            q = sa.select(CheckRow).where(CheckRow.model == model).order_by(CheckRow.id.desc()).limit(limit)
            return list(s.scalars(q))

    def last_check(self, model: str) -> tuple[datetime, str, str | None] | None:
        """``(started_at, status, request_key)`` of the model's newest check, without its signals."""
        return self.last_checks([model]).get(model)

    def last_checks(self, models: Sequence[str]) -> dict[str, tuple[datetime, str, str | None]]:
        """:meth:`last_check` of several models in one query (a batch of scheduled checks)."""
        if not models:
            return {}
        with self.session() as s:
            rows = _newest_rows(s, CheckRow, ("model", "started_at", "status", "request_key"), models)
            return {model: (started, status, key) for model, started, status, key in rows}

    def check_history(self, model: str, limit: int = 500) -> list[CheckPoint]:
        """The finished checks among the model's newest ``limit``, newest first, without their full
        signals (a check's signals hold a drift report per column: reading 500 of them costs more
        than the rest of a check)."""
        with self.session() as s:
            return self._check_history(s, model, limit)

    @staticmethod
    def _check_history(s: Session | sa.Connection, model: str, limit: int) -> list[CheckPoint]:
        # all rows in one fetch: iterating a result fetches its rows one by one (500 calls)
        rows = s.execute(_snapshot_queries()["history"], {"model": model, "limit": limit}).all()
        return [CheckPoint(*row[:-1]) for row in rows if row[-1] == "done"]

    def latest_check_summaries(self, models: Sequence[str]) -> dict[str, CheckSummary]:
        """Each named model's newest check (:class:`CheckSummary`), in one index step per model."""
        if not models:
            return {}
        with self.session() as s:
            rows = _newest_rows(s, CheckRow, CheckSummary._fields, models)
            return {row.model: CheckSummary(*row) for row in rows}

    def last_check_times(self, models: Sequence[str] | None = None) -> dict[str, datetime]:
        """When each model's newest check started: of ``models`` (see :func:`_newest_rows`), else of every model."""
        with self.session() as s:
            rows = _newest_rows(s, CheckRow, ("model", "started_at"), models)
            return {model: started for model, started in rows}

    def metric_series(
        self, model: str, metric: str, limit: int = 50, version: str | None = None
    ) -> list[tuple[datetime, float]]:
        """Past ``(check time, value)`` of a metric for a model (optionally one version), oldest first."""
        with self.session() as s:
            q = sa.select(CheckRow.started_at, CheckRow.metric_value).where(
                CheckRow.model == model,
                CheckRow.metric == metric,
                CheckRow.metric_value.is_not(None),
                CheckRow.status == "done",
            )
            if version is not None:
                q = q.where(CheckRow.version == version)
            rows = s.execute(q.order_by(CheckRow.id.desc()).limit(limit)).all()
            return [(t, float(v)) for t, v in reversed(rows) if v is not None]

    # retrains -------------------------------------------------------------------------------
    def create_retrain(self, model: str, decision_id: int | None, key: str, **fields: Any) -> int | None:
        """Create a retrain; ``None`` when one with this idempotency key already exists."""
        try:
            with self.session() as s:
                row = RetrainRow(model=model, decision_id=decision_id, idempotency_key=key, **fields)
                s.add(row)
                s.flush()
                return row.id
        except IntegrityError:
            return None

    def retrain(self, retrain_id: int) -> RetrainRow:
        with self.session() as s:
            return s.get_one(RetrainRow, retrain_id)

    def update_retrain(self, retrain_id: int, **fields: Any) -> RetrainRow:
        with self.session() as s:
            row = s.get_one(RetrainRow, retrain_id)
            for k, v in fields.items():
                setattr(row, k, v)
            return row

    def claim_retrain(self, retrain_id: int, from_states: Sequence[str], to_state: str) -> bool:
        """Move a retrain to ``to_state`` only if it is in one of ``from_states`` (one winner)."""
        with self.session() as s:
            res = s.execute(
                sa.update(RetrainRow)
                .where(RetrainRow.id == retrain_id, RetrainRow.state.in_(list(from_states)))
                .values(state=to_state, updated_at=utcnow())
            )
            return bool(res.rowcount)  # type: ignore[attr-defined]

    def retrains(self, model: str | None = None, limit: int = 50) -> list[RetrainRow]:
        with self.session() as s:
            q = sa.select(RetrainRow).order_by(RetrainRow.id.desc()).limit(limit)
            if model is not None:
                q = q.where(RetrainRow.model == model)
            return list(s.scalars(q))

    def reclaim_stale_retrains(self, cutoff: datetime, now: datetime) -> list[int]:
        """Queue again the retrains left ``training``/``evaluating`` since before ``cutoff`` (a dead worker)."""
        with self.session() as s:
            stale = s.scalars(
                sa.select(RetrainRow.id).where(
                    RetrainRow.state.in_(["training", "evaluating"]), RetrainRow.updated_at < cutoff
                )
            ).all()
            if stale:
                s.execute(
                    sa.update(RetrainRow)
                    .where(RetrainRow.id.in_(stale), RetrainRow.state.in_(["training", "evaluating"]))
                    .values(state="queued", updated_at=now, error="lease expired: the worker stopped; queued again")
                )
            return list(stale)

    def retrain_in_flight(self, model: str) -> bool:
        with self.session() as s:
            q = sa.select(sa.func.count()).where(RetrainRow.model == model, RetrainRow.state.in_(IN_FLIGHT))
            return bool(s.scalar(q))

    def models_retraining(self) -> set[str]:
        """Every model with a retrain in flight, in one query (few rows: one per running retrain)."""
        with self.session() as s:
            return set(s.scalars(sa.select(RetrainRow.model).where(RetrainRow.state.in_(IN_FLIGHT)).distinct()))

    # budgets --------------------------------------------------------------------------------
    def charge(self, caps: dict[str, float | None], amount: float, when: datetime) -> bool:
        """Charge ``amount`` to every scope in ``caps`` (``model:x``, ``team:y``) or to none.

        A scope with a cap is charged only while spent + amount <= cap; the conditional UPDATE
        makes that atomic across workers. Returns False (and charges nothing) when any cap would
        be exceeded.
        """
        month = month_of(when)
        for scope in caps:
            try:
                with self.session() as s:
                    q = sa.select(BudgetRow.id).where(BudgetRow.scope == scope, BudgetRow.month == month)
                    if s.scalar(q) is None:
                        s.add(BudgetRow(scope=scope, month=month, spent=0.0))
            except IntegrityError:
                pass
        with self.session() as s:
            for scope, cap in caps.items():
                stmt = sa.update(BudgetRow).where(BudgetRow.scope == scope, BudgetRow.month == month)
                if cap is not None:
                    stmt = stmt.where(BudgetRow.spent + amount <= cap + 1e-9)
                res = s.execute(stmt.values(spent=BudgetRow.spent + amount))
                if not res.rowcount:  # type: ignore[attr-defined]
                    s.rollback()
                    return False
            return True

    def spent(self, scope: str, when: datetime) -> float:
        with self.session() as s:
            v = s.scalar(sa.select(BudgetRow.spent).where(BudgetRow.scope == scope, BudgetRow.month == month_of(when)))
            return float(v or 0.0)

    # overrides ------------------------------------------------------------------------------
    def add_override(self, model: str, kind: str, author: str, reason: str, expires_at: datetime) -> int:
        with self.session() as s:
            row = OverrideRow(model=model, kind=kind, author=author, reason=reason, expires_at=expires_at)
            s.add(row)
            s.flush()
            return row.id

    def active_override(self, model: str, kind: str, now: datetime) -> OverrideRow | None:
        with self.session() as s:
            return s.scalar(self._active_override_q(model, kind, now))

    @staticmethod
    def _active_override_q(model: str, kind: str, now: datetime) -> sa.Select[OverrideRow]:
        return (
            sa.select(OverrideRow)
            .where(
                OverrideRow.model == model,
                OverrideRow.kind == kind,
                OverrideRow.expires_at > now,
                OverrideRow.consumed_at.is_(None),
            )
            .order_by(OverrideRow.id.desc())
            .limit(1)
        )

    def consume_override(self, override_id: int, now: datetime) -> None:
        with self.session() as s:
            s.get_one(OverrideRow, override_id).consumed_at = now

    # outbox ---------------------------------------------------------------------------------
    def claim_outbox(self, now: datetime, lease_seconds: float = 60.0, limit: int = 100) -> list[OutboxRow]:
        """Pending items that are due, leased to the caller for ``lease_seconds``."""
        lease_until = now + timedelta(seconds=lease_seconds)
        claimed = []
        with self.session() as s:
            due = s.scalars(
                sa.select(OutboxRow)
                .where(OutboxRow.status == "pending", OutboxRow.next_attempt_at <= now)
                .order_by(OutboxRow.id)
                .limit(limit)
            ).all()
            candidates = [(r.id, r.next_attempt_at) for r in due]
        for item_id, seen in candidates:
            with self.session() as s:
                res = s.execute(
                    sa.update(OutboxRow)
                    .where(OutboxRow.id == item_id, OutboxRow.status == "pending", OutboxRow.next_attempt_at == seen)
                    .values(next_attempt_at=lease_until)
                )
                if res.rowcount:  # type: ignore[attr-defined]
                    claimed.append(s.get_one(OutboxRow, item_id))
        return claimed

    def outbox_delivered(self, item_id: int, now: datetime) -> None:
        with self.session() as s:
            row = s.get_one(OutboxRow, item_id)
            row.status, row.delivered_at, row.attempts, row.last_error = "delivered", now, row.attempts + 1, None

    def outbox_suppressed(self, item_id: int, now: datetime, why: str) -> None:
        with self.session() as s:
            row = s.get_one(OutboxRow, item_id)
            row.status, row.delivered_at, row.last_error = "suppressed", now, why

    def outbox_failed(self, item_id: int, error: str, retry_at: datetime | None) -> None:
        """Record a failed attempt; ``retry_at=None`` moves the item to the dead-letter state."""
        with self.session() as s:
            row = s.get_one(OutboxRow, item_id)
            row.attempts += 1
            row.last_error = error[:4000]
            if retry_at is None:
                row.status = "dead"
            else:
                row.next_attempt_at = retry_at

    def outbox_counts(self) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(sa.select(OutboxRow.status, sa.func.count()).group_by(OutboxRow.status))
            return {str(k): int(v) for k, v in rows}

    def outbox_items(self, status: str | None = None, limit: int = 100) -> list[OutboxRow]:
        with self.session() as s:
            q = sa.select(OutboxRow).order_by(OutboxRow.id.desc()).limit(limit)
            if status is not None:
                q = q.where(OutboxRow.status == status)
            return list(s.scalars(q))

    def last_delivered(self, model: str, kind: str, event_type: str) -> OutboxRow | None:
        """The newest delivered item of an event type, for digest mode."""
        with self.session() as s:
            rows = s.scalars(
                sa.select(OutboxRow)
                .where(OutboxRow.model == model, OutboxRow.kind == kind, OutboxRow.status == "delivered")
                .order_by(OutboxRow.id.desc())
                .limit(50)
            )
            return next((r for r in rows if r.payload.get("type") == event_type), None)

    def record_notification(
        self,
        outbox_id: int,
        model: str,
        event_type: str,
        target: str,
        attempt: int,
        ok: bool,
        status_code: int | None,
        error: str | None,
    ) -> None:
        with self.session() as s:
            s.add(
                NotificationRow(
                    outbox_id=outbox_id,
                    model=model,
                    event_type=event_type,
                    target=target,
                    attempt=attempt,
                    ok=ok,
                    status_code=status_code,
                    error=error,
                )
            )

    def notifications(self, model: str | None = None, limit: int = 100) -> list[NotificationRow]:
        with self.session() as s:
            q = sa.select(NotificationRow).order_by(NotificationRow.id.desc()).limit(limit)
            if model is not None:
                q = q.where(NotificationRow.model == model)
            return list(s.scalars(q))

    # estimation errors ----------------------------------------------------------------------
    def estimation_errors(self, model: str, metric: str, limit: int = 20) -> list[float]:
        with self.session() as s:
            return [float(v) for v in s.scalars(self._estimation_errors_q(model, metric, limit))]

    @staticmethod
    def _estimation_errors_q(model: str, metric: str, limit: int) -> sa.Select[Any]:
        return (
            sa.select(EstimationErrorRow.abs_error)
            .where(EstimationErrorRow.model == model, EstimationErrorRow.metric == metric)
            .order_by(EstimationErrorRow.id.desc())
            .limit(limit)
        )

@functools.cache
def _insert_or_skip_statement(dialect: str, table: type[Base], unique: str, returning: bool) -> Any:
    """See :meth:`Store._insert_or_skip`; built once per dialect and table."""
    if dialect not in ("postgresql", "sqlite"):
        return None
    from sqlalchemy.dialects import postgresql, sqlite

    t = _table(table)
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(t).on_conflict_do_nothing(
        index_elements=[unique]
    )
    return stmt.returning(t.c.id) if returning else stmt


@functools.cache
def _insert_statement(table: type[Base], returning: bool) -> Any:
    """``INSERT`` into ``table`` (``RETURNING id``), built once: the columns come with the values
    at execution (building a statement and its cache key costs more than running it here)."""
    t = _table(table)
    return sa.insert(t).returning(t.c.id) if returning else sa.insert(t)


@functools.cache
def _finish_update(returning: bool) -> Any:
    """``UPDATE checks ... WHERE id = :id_`` (``RETURNING model``), built once; the columns to set
    come with the values at execution."""
    checks = _table(CheckRow)
    stmt = sa.update(checks).where(checks.c.id == sa.bindparam("id_"))
    return stmt.returning(checks.c.model) if returning else stmt


@functools.cache
def _snapshot_queries() -> dict[str, Any]:
    """The reads of every check, built once with bound parameters (building and caching a statement
    costs more than running it here)."""
    model: sa.BindParameter[str] = sa.bindparam("model")
    now: sa.BindParameter[datetime] = sa.bindparam("now")
    limit: sa.BindParameter[int] = sa.bindparam("limit")
    return {
        "retrains": sa.select(_table(RetrainRow))
        .where(RetrainRow.model == model)
        .order_by(RetrainRow.id.desc())
        .limit(limit),
        "overrides": sa.select(_table(OverrideRow))
        .where(OverrideRow.model == model, OverrideRow.expires_at > now, OverrideRow.consumed_at.is_(None))
        .order_by(OverrideRow.id.desc()),
        "budgets": sa.select(BudgetRow.scope, BudgetRow.spent).where(
            BudgetRow.scope.in_([sa.literal("model:") + model, sa.bindparam("team")]),
            BudgetRow.month == sa.bindparam("month"),
        ),
        "latest_decision": sa.select(_table(DecisionRow))
        .where(DecisionRow.model == model)
        .order_by(DecisionRow.id.desc())
        .limit(1),
        "history": sa.select(
            CheckRow.started_at,
            CheckRow.version,
            CheckRow.metric_value,
            CheckRow.metric_source,
            CheckRow.metric_baseline,
            CheckRow.change_at,
            CheckRow.metric,
            CheckRow.metric_se,
            CheckRow.rows_from,
            CheckRow.rows_to,
            CheckRow.metric_estimate,
            CheckRow.status,
        )
        .where(CheckRow.model == model)
        .order_by(CheckRow.id.desc())
        .limit(limit),
        "estimation_errors": sa.select(EstimationErrorRow.abs_error)
        .where(EstimationErrorRow.model == model, EstimationErrorRow.metric == sa.bindparam("metric"))
        .order_by(EstimationErrorRow.id.desc())
        .limit(limit),
    }


def _head_revision(folder: Path) -> str:
    """The newest migration: the revision no other one revises (read off the scripts, without Alembic)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for script in folder.glob("*.py"):
        text = script.read_text()
        for key, found in (("revision", revisions), ("down_revision", revised)):
            match = re.search(rf'^{key} = "([^"]+)"', text, re.M)
            if match:
                found.add(match.group(1))
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {folder} have {len(heads)} heads: {sorted(heads)}")
    return heads.pop()


def _time(value: Any) -> datetime | None:
    """A time kept in a check's signals (a datetime, or its ISO text once made JSON)."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _outbox_values(model: str, kind: str, key: str, payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "kind": kind,
        "model": model,
        "dedupe_key": key,
        "payload": to_jsonable(payload),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
