"""The cost ledger's reads and writes: imported spend by day, spend anomalies, retrains' bills.

A mixin of :class:`controller.adapters.store.store.Store` (the same engine and transactions). The
console and the reports read the ledger only through the methods here; each returns plain records.

Every money figure is in one ``basis``: ``effective`` (FOCUS EffectiveCost: amortized, commitments
spread over the usage they cover) or ``billed`` (BilledCost: as invoiced).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, cast

import sqlalchemy as sa

from controller.adapters.store.tables import CostImportRow, LedgerRow, RetrainRow, SpendAnomalyRow

Basis = Literal["effective", "billed"]
GROUPS = ("model", "team", "stage", "day", "source", "run_id")


@dataclass(frozen=True)
class SpendBatch:
    """Ledger rows made from one batch of billing rows (already attributed and summed per day)."""

    rows: list[dict[str, Any]]
    rows_read: int
    days: frozenset[date]
    billed: float
    effective: float


@dataclass(frozen=True)
class ImportSummary:
    import_id: int
    source: str
    rows_read: int
    rows_stored: int
    first_day: date | None
    last_day: date | None
    days: int
    """Days of the source this import covers: every one of them was replaced."""
    billed_total: float
    effective_total: float
    replaced_rows: int
    """Ledger rows of earlier imports of the same source on those days, deleted."""


@dataclass(frozen=True)
class SpendGroup:
    """Spend of one group; a field the grouping did not use is None (``day`` included)."""

    cost: float
    currency: str | None
    model: str | None = None
    team: str | None = None
    stage: str | None = None
    day: date | None = None
    source: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class SpendTotals:
    total: float
    unattributed: float
    """Spend no model was found for (no model tag, no known run id)."""
    currencies: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ResourceSpend:
    stage: str
    resource_id: str | None
    service_name: str | None
    cost: float
    """On the day asked for."""
    before: float
    """Mean per day over the days before it that were asked for."""


def _cost(basis: Basis) -> Any:
    return LedgerRow.effective_cost if basis == "effective" else LedgerRow.billed_cost


def _t(row: type[Any]) -> sa.Table:
    """The table of a mapped class, for Core statements."""
    return cast(sa.Table, row.__table__)


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None, "an insert gives its primary key"
    return int(key[0])


class LedgerStore:
    """Ledger methods of the store (see the module docstring)."""

    engine: sa.Engine
    _reading: Callable[[], AbstractContextManager[sa.Connection]]

    # writing --------------------------------------------------------------------------------
    def import_spend(self, source: str, files: str, batches: Iterable[SpendBatch], now: datetime) -> ImportSummary:
        """Store an import's rows and replace, for ``source``, every day they cover: one transaction.

        Earlier rows of the same source on a covered day are deleted at the end, so a re-imported
        file or a restated month never counts twice, and a failure half-way leaves the ledger as it
        was (nothing half-written).
        """
        ledger = _t(LedgerRow)
        with self.engine.begin() as conn:
            header = {
                "source": source,
                "files": files,
                "imported_at": now,
                "rows_read": 0,
                "rows_stored": 0,
                "days": 0,
                "billed_total": 0.0,
                "effective_total": 0.0,
            }
            import_id = _new_id(conn.execute(sa.insert(_t(CostImportRow)).values(header)))
            days: set[date] = set()
            read = stored = 0
            billed = effective = 0.0
            for batch in batches:
                if batch.rows:
                    conn.execute(
                        sa.insert(ledger), [{**r, "import_id": import_id, "source": source} for r in batch.rows]
                    )
                days |= batch.days
                read += batch.rows_read
                stored += len(batch.rows)
                billed += batch.billed
                effective += batch.effective
            replaced = 0
            ordered = sorted(days)
            for at in range(0, len(ordered), 500):
                res = conn.execute(
                    sa.delete(ledger).where(
                        LedgerRow.source == source,
                        LedgerRow.import_id != import_id,
                        LedgerRow.day.in_(ordered[at : at + 500]),
                    )
                )
                replaced += int(res.rowcount or 0)
            summary = ImportSummary(
                import_id,
                source,
                read,
                stored,
                ordered[0] if ordered else None,
                ordered[-1] if ordered else None,
                len(ordered),
                billed,
                effective,
                replaced,
            )
            conn.execute(
                sa.update(_t(CostImportRow))
                .where(CostImportRow.id == import_id)
                .values(
                    rows_read=read,
                    rows_stored=stored,
                    first_day=summary.first_day,
                    last_day=summary.last_day,
                    days=len(ordered),
                    billed_total=billed,
                    effective_total=effective,
                )
            )
            return summary

    def record_spend_anomalies(self, anomalies: Sequence[dict[str, Any]], now: datetime) -> list[SpendAnomalyRow]:
        """Record anomalies not recorded before (one per series and day); the new ones."""
        if not anomalies:
            return []
        table = _t(SpendAnomalyRow)
        new: list[SpendAnomalyRow] = []
        with self.engine.begin() as conn:
            for a in anomalies:
                known = conn.execute(
                    sa.select(SpendAnomalyRow.id).where(
                        SpendAnomalyRow.series == a["series"], SpendAnomalyRow.day == a["day"]
                    )
                ).first()
                if known is not None:
                    continue
                values = {**a, "detected_at": now}
                row_id = _new_id(conn.execute(sa.insert(table).values(values)))
                new.append(SpendAnomalyRow(id=row_id, **values))
        return new

    # reading --------------------------------------------------------------------------------
    def spend_by(
        self,
        start: date,
        end: date,
        by: Sequence[str],
        basis: Basis = "effective",
        attributed: bool | None = None,
        model: str | None = None,
    ) -> list[SpendGroup]:
        """Spend from ``start`` to ``end`` (inclusive days) grouped by ``by`` (any of ``GROUPS``) and
        currency. ``attributed``: True keeps rows with a model, False those without, None all;
        ``model``: that model's rows only."""
        unknown = [b for b in by if b not in GROUPS]
        if unknown:
            raise ValueError(f"cannot group spend by {unknown}; use {GROUPS}")
        keys = list(dict.fromkeys(by))
        cols = [getattr(LedgerRow, k) for k in keys]
        q = (
            sa.select(*cols, LedgerRow.currency, sa.func.sum(_cost(basis)))
            .where(LedgerRow.day >= start, LedgerRow.day <= end)
            .group_by(*cols, LedgerRow.currency)
        )
        if attributed is not None:
            q = q.where(LedgerRow.model.is_not(None) if attributed else LedgerRow.model.is_(None))
        if model is not None:
            q = q.where(LedgerRow.model == model)
        with self._reading() as conn:
            rows = conn.execute(q).all()
        out = []
        for row in rows:
            named = dict(zip(keys, row[: len(keys)], strict=True))
            out.append(SpendGroup(cost=float(row[-1] or 0.0), currency=row[len(keys)], **named))
        return out

    def spend_totals(self, start: date, end: date, basis: Basis = "effective") -> SpendTotals:
        """All spend and the unattributed part, from ``start`` to ``end`` (inclusive)."""
        cost = _cost(basis)
        q = sa.select(
            sa.func.sum(cost),
            sa.func.sum(sa.case((LedgerRow.model.is_(None), cost), else_=0.0)),
        ).where(LedgerRow.day >= start, LedgerRow.day <= end)
        currencies = sa.select(LedgerRow.currency).where(LedgerRow.day >= start, LedgerRow.day <= end).distinct()
        with self._reading() as conn:
            total, unattributed = conn.execute(q).one()
            found = sorted(c for c in conn.execute(currencies).scalars() if c)
        return SpendTotals(float(total or 0.0), float(unattributed or 0.0), tuple(found))

    def spend_by_month(
        self, start: date, end: date, by: Sequence[str] = ("team", "stage"), basis: Basis = "effective"
    ) -> dict[str, list[SpendGroup]]:
        """:meth:`spend_by` per calendar month (``YYYY-MM``), for the console's monthly views."""
        months: dict[str, dict[tuple[Any, ...], float]] = {}
        currency: dict[tuple[Any, ...], str | None] = {}
        for g in self.spend_by(start, end, [*by, "day"], basis):
            assert g.day is not None
            key = tuple(getattr(g, k) for k in by)
            bucket = months.setdefault(g.day.strftime("%Y-%m"), {})
            bucket[key] = bucket.get(key, 0.0) + g.cost
            currency[key] = g.currency
        return {
            month: [
                SpendGroup(cost=v, currency=currency[k], **dict(zip(by, k, strict=True)))
                for k, v in sorted(groups.items(), key=lambda kv: -kv[1])
            ]
            for month, groups in sorted(months.items())
        }

    def spend_by_run(self, run_ids: Sequence[str], basis: Basis = "effective") -> dict[str, float]:
        """Spend tagged with each MLflow run id, whatever its day (runs without spend are absent)."""
        ids = [r for r in dict.fromkeys(run_ids) if r]
        out: dict[str, float] = {}
        with self._reading() as conn:
            for at in range(0, len(ids), 500):
                q = (
                    sa.select(LedgerRow.run_id, sa.func.sum(_cost(basis)))
                    .where(LedgerRow.run_id.in_(ids[at : at + 500]))
                    .group_by(LedgerRow.run_id)
                )
                out.update({str(r): float(v or 0.0) for r, v in conn.execute(q)})
        return out

    def resource_spend(
        self,
        day: date,
        since: date,
        basis: Basis = "effective",
        *,
        model: str | None = None,
        team: str | None = None,
        stage: str | None = None,
        unattributed: bool = False,
        limit: int = 5,
    ) -> list[ResourceSpend]:
        """What drove a day's spend in one series: the resources whose cost grew most on ``day``
        against their mean per day from ``since`` to the day before."""
        cost = _cost(basis)
        q = sa.select(
            LedgerRow.stage,
            LedgerRow.resource_id,
            LedgerRow.service_name,
            sa.func.sum(sa.case((LedgerRow.day == day, cost), else_=0.0)),
            sa.func.sum(sa.case((LedgerRow.day < day, cost), else_=0.0)),
        ).where(LedgerRow.day >= since, LedgerRow.day <= day)
        if unattributed:
            q = q.where(LedgerRow.model.is_(None))
        if model is not None:
            q = q.where(LedgerRow.model == model)
        if team is not None:
            q = q.where(LedgerRow.team == team)
        if stage is not None:
            q = q.where(LedgerRow.stage == stage)
        q = q.group_by(LedgerRow.stage, LedgerRow.resource_id, LedgerRow.service_name)
        span = max((day - since).days, 1)
        with self._reading() as conn:
            found = [
                ResourceSpend(st, r, s, float(on or 0.0), float(past or 0.0) / span)
                for st, r, s, on, past in conn.execute(q)
            ]
        found.sort(key=lambda x: x.cost - x.before, reverse=True)
        return found[:limit]

    def ledger_span(self) -> tuple[date, date] | None:
        """The first and last day the ledger has spend for."""
        with self._reading() as conn:
            first, last = conn.execute(sa.select(sa.func.min(LedgerRow.day), sa.func.max(LedgerRow.day))).one()
        return None if first is None else (_as_date(first), _as_date(last))

    def cost_imports(self, limit: int = 50) -> list[CostImportRow]:
        with self._reading() as conn:
            rows = conn.execute(sa.select(CostImportRow.__table__).order_by(CostImportRow.id.desc()).limit(limit)).all()
        return [CostImportRow(**r._mapping) for r in rows]

    def spend_anomalies(self, start: date, end: date) -> list[SpendAnomalyRow]:
        """Recorded spend anomalies whose day is in the range, oldest first."""
        with self._reading() as conn:
            rows = conn.execute(
                sa.select(SpendAnomalyRow.__table__)
                .where(SpendAnomalyRow.day >= start, SpendAnomalyRow.day <= end)
                .order_by(SpendAnomalyRow.day, SpendAnomalyRow.id)
            ).all()
        return [SpendAnomalyRow(**r._mapping) for r in rows]

    def retrains_with_runs(self, models: Sequence[str] | None = None) -> list[RetrainRow]:
        """Retrains that have an MLflow run id (the ones a bill can name), oldest first."""
        q = sa.select(RetrainRow.__table__).where(RetrainRow.mlflow_run_id.is_not(None)).order_by(RetrainRow.id)
        if models is not None:
            q = q.where(RetrainRow.model.in_(list(models)))
        with self._reading() as conn:
            return [RetrainRow(**r._mapping) for r in conn.execute(q).all()]

    def run_models(self) -> dict[str, str]:
        """Every retrain's MLflow run id and its model: a bill tagged with the run id belongs to it."""
        q = sa.select(RetrainRow.mlflow_run_id, RetrainRow.model).where(RetrainRow.mlflow_run_id.is_not(None))
        with self._reading() as conn:
            return {str(r): str(m) for r, m in conn.execute(q)}


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
