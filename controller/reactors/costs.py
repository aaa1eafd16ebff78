"""Cost visibility: importing billing exports, spend reports, spend anomalies, retrains' bills, the ROI audit.

Every figure of money here is measured where the ledger has it (FOCUS exports imported with
``retrainctl costs import``) and taken from the model's config where it does not, and says which.

- :func:`import_exports`: read FOCUS files into the ledger (replacing, per source, the days they
  cover), then :func:`reconcile_retrains`.
- :func:`spend_report`: spend in a date range grouped by model, team and/or stage; the rows and the
  unattributed spend add up to the total.
- :func:`find_anomalies` / :func:`check_spend`: the spend detector over the ledger's daily series;
  the daily check records each new anomaly once and sends its owner a signed ``cost.anomaly``.
- :func:`reconcile_retrains`: a retrain's bill replaces its estimate once billing has it.
- :func:`roi_audit`: per watched model, measured spend by stage, value delivered, its retrains, ROI
  and a verdict; idle and duplicate models.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np

from controller.adapters.ledger import Attribution, StagePattern, read_export
from controller.adapters.registry.base import Registry
from controller.adapters.store.ledger import Basis, ImportSummary, SpendBatch, SpendGroup
from controller.adapters.store.tables import RetrainRow, SpendAnomalyRow
from controller.config import STAGES, ModelConfig
from controller.errors import DataError, GiveUp, UserError
from controller.reactors.context import Context
from detectors.spend import SpendDetector

RUNNING_STAGES = ("serving", "storage", "monitoring")
"""The stages that cost money every day a model is kept in production."""


class NoRegistry:
    """The registry of a process that only reads and writes the ledger (the cost commands): it never
    opens MLflow (whose client alone takes seconds to start and, on SQLite, creates its tables)."""

    def __getattr__(self, name: str) -> Any:
        raise GiveUp(f"the cost commands do not use the model registry (asked for {name!r})")


def ledger_context(config: Path | None) -> Context:
    """A context for the cost commands: config and store, no MLflow."""
    return Context.from_config(config, registry=cast(Registry, NoRegistry()))


# import ---------------------------------------------------------------------------------------
def attribution(ctx: Context) -> Attribution:
    """The ``costs:`` rules with what the controller knows: model names, teams, retrains' run ids."""
    c = ctx.service.costs
    names = {cfg.registered_model: name for name, cfg in ctx.models.items()}
    names.update({name: name for name in ctx.models})
    return Attribution(
        model_tag=c.model_tag,
        team_tag=c.team_tag,
        stage_tag=c.stage_tag,
        run_tag=c.run_tag,
        rules=tuple(StagePattern(**r.model_dump()) for r in c.stages),
        model_names=names,
        model_teams={name: cfg.team for name, cfg in ctx.models.items() if cfg.team},
        run_models=ctx.store.run_models(),
    )


def import_exports(
    ctx: Context,
    files: Sequence[Path],
    source: str = "default",
    on_batch: Callable[[Path, int], None] | None = None,
) -> tuple[ImportSummary, list[RetrainRow]]:
    """Import FOCUS files as one import of ``source``; the summary and the retrains whose bill changed."""
    if not source.strip():
        raise UserError("--source must not be empty")
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"{missing[0]}: file not found")
    rules = attribution(ctx)
    batch_rows = ctx.service.costs.batch_rows

    def batches() -> Iterator[SpendBatch]:
        for f in files:
            progress = None if on_batch is None else functools.partial(on_batch, f)
            yield from read_export(f, rules, batch_rows, on_batch=progress)

    summary = ctx.store.import_spend(source, ", ".join(f.name for f in files), batches(), ctx.clock())
    return summary, reconcile_retrains(ctx)


# reports --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpendReport:
    currency: str | None
    start: date
    end: date
    by: tuple[str, ...]
    rows: list[SpendGroup]
    unattributed: float
    total: float

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "rows": [{k: getattr(r, k) for k in ("model", "team", "stage")} | {"cost": r.cost} for r in self.rows],
            "unattributed": self.unattributed,
            "total": self.total,
        }


def default_range(ctx: Context, start: date | None, end: date | None) -> tuple[date, date]:
    """The range asked for; a missing end is the ledger's last day, a missing start the first of
    the end's month."""
    span = ctx.store.ledger_span()
    end = end or (span[1] if span else ctx.clock().date())
    start = start or end.replace(day=1)
    if start > end:
        raise UserError(f"--from {start} is after --to {end}")
    return start, end


def spend_report(
    ctx: Context, start: date, end: date, by: Sequence[str] = ("model",), basis: Basis | None = None
) -> SpendReport:
    """Attributed spend grouped by ``by`` (model, team, stage), the unattributed rest and the total."""
    basis = basis or ctx.service.costs.basis
    keys = tuple(dict.fromkeys(by)) or ("model",)
    bad = [k for k in keys if k not in ("model", "team", "stage")]
    if bad:
        raise UserError(f"--by: cannot group by {bad[0]!r}; use model, team or stage")
    totals = ctx.store.spend_totals(start, end, basis)
    if len(totals.currencies) > 1:
        raise DataError(
            f"the ledger holds spend in {', '.join(totals.currencies)} from {start} to {end}: "
            "import each currency as its own --source and report a range with one currency"
        )
    rows = sorted(
        ctx.store.spend_by(start, end, keys, basis, attributed=True),
        key=lambda g: (-g.cost, tuple(str(getattr(g, k)) for k in keys)),
    )
    currency = totals.currencies[0] if totals.currencies else None
    return SpendReport(currency, start, end, keys, rows, totals.unattributed, totals.total)


# measured costs for decisions and the ROI audit ------------------------------------------------
@dataclass(frozen=True)
class MonthCost:
    cost: float
    value: float | None
    """Revenue over the same days (``revenue_per_day`` x days); None when the config states none."""
    days: int
    source: str
    """``ledger`` (measured spend) or ``config`` (serving cost per day + retrain spend)."""
    by_stage: dict[str, float] = field(default_factory=dict)


def month_cost(ctx: Context, cfg: ModelConfig, year: int, month: int, now: datetime) -> MonthCost:
    """What the model cost in a calendar month, with the value it earned over the same days: measured
    up to ``now`` and the ledger's last day when the ledger has the model's spend, else the config's
    running cost for the whole month plus its retrain spend."""
    econ = cfg.economics
    first = date(year, month, 1)
    last = min(date(year, month, calendar.monthrange(year, month)[1]), now.date())
    span = ctx.store.ledger_span()
    if span is not None and span[0] <= last and span[1] >= first:
        measured_to = min(last, span[1])
        groups = ctx.store.spend_by(first, measured_to, ["stage"], ctx.service.costs.basis, model=cfg.name)
        if groups:
            days = (measured_to - first).days + 1
            by_stage = {g.stage or "other": g.cost for g in groups}
            value = None if econ is None or econ.revenue_per_day is None else econ.revenue_per_day * days
            return MonthCost(sum(by_stage.values()), value, days, "ledger", by_stage)
    # the config's rates are per day of the whole month (as the kill criteria always counted them)
    days = calendar.monthrange(year, month)[1]
    retrains = ctx.store.spent(f"model:{cfg.name}", datetime(year, month, 1, tzinfo=UTC))
    serving = (econ.serving_cost_per_day if econ else 0.0) * days
    value = None if econ is None or econ.revenue_per_day is None else econ.revenue_per_day * days
    return MonthCost(retrains + serving, value, days, "config", {"training": retrains, "serving": serving})


def months_over_value(ctx: Context, cfg: ModelConfig, now: datetime, periods: int) -> tuple[int, str]:
    """Consecutive recent months (this one first) in which the model cost more than it earned, and
    ``ledger`` when any of them was measured, else ``config``."""
    if cfg.economics is None or cfg.economics.revenue_per_day is None:
        return 0, "config"
    count, source = 0, "config"
    year, month = now.year, now.month
    for _ in range(periods):
        mc = month_cost(ctx, cfg, year, month, now)
        source = "ledger" if mc.source == "ledger" else source
        if mc.value is None or mc.cost <= mc.value:
            break
        count += 1
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return count, source


def running_cost(ctx: Context, cfg: ModelConfig, now: datetime, days: int = 30) -> tuple[float, str]:
    """Money per day to keep the model in production (serving, storage, monitoring): measured over
    the ledger's last ``days`` days up to ``now`` when it has any for the model, else the config's."""
    span = ctx.store.ledger_span()
    if span is not None:
        end = min(span[1], now.date())
        start = end - timedelta(days=days - 1)
        if end >= span[0]:
            groups = ctx.store.spend_by(start, end, ["stage"], ctx.service.costs.basis, model=cfg.name)
            if groups:
                covered = (end - max(start, span[0])).days + 1
                return sum(g.cost for g in groups if g.stage in RUNNING_STAGES) / covered, "ledger"
    return (cfg.economics.serving_cost_per_day if cfg.economics else 0.0), "config"


# reconciliation --------------------------------------------------------------------------------
def reconcile_retrains(ctx: Context) -> list[RetrainRow]:
    """Give every retrain whose run id the ledger names its billed cost, in place of the estimate.

    ``actual_cost`` becomes the bill plus the config's labeling and overhead (never on a cloud
    bill); ``cost_anomaly`` is judged again against it (outside 1.5x the estimate's interval) and a
    ``retrain.cost_anomaly`` on the billed figure is sent once. Returns the retrains changed."""
    retrains = ctx.store.retrains_with_runs(list(ctx.models))
    bills = ctx.store.spend_by_run([r.mlflow_run_id or "" for r in retrains], ctx.service.costs.basis)
    changed = []
    now = ctx.clock()
    for r in retrains:
        bill = bills.get(r.mlflow_run_id or "")
        if bill is None:
            continue
        if r.cost_source == "billed" and r.billed_cost is not None and abs(r.billed_cost - bill) < 1e-9:
            continue
        econ = ctx.models[r.model].economics
        fixed = econ.labeling_cost_per_row * econ.labels_per_retrain + econ.fixed_overhead if econ else 0.0
        actual = bill + fixed
        low, high = r.cost_low or 0.0, r.cost_high or float("inf")
        anomaly = actual > 1.5 * high or actual < low / 1.5
        row = ctx.store.update_retrain(
            r.id, billed_cost=bill, actual_cost=actual, cost_source="billed", cost_anomaly=anomaly
        )
        changed.append(row)
        if anomaly:
            cfg = ctx.models[r.model]
            event = {
                "type": "retrain.cost_anomaly",
                "model": cfg.name,
                "timestamp": now.isoformat(),
                "data": {
                    "registered_model": cfg.registered_model,
                    "retrain_id": r.id,
                    "mlflow_run_id": r.mlflow_run_id,
                    "cost_source": "billed",
                    "billed_cost": bill,
                    "actual_cost": actual,
                    "cost_estimate": r.cost_estimate,
                    "cost_low": r.cost_low,
                    "cost_high": r.cost_high,
                },
            }
            ctx.store.enqueue(cfg.name, "webhook", f"webhook:retrain:{r.id}:cost_anomaly:billed", event, now)
    return changed


# spend anomalies -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpendAnomaly:
    series: str
    model: str | None
    team: str | None
    stage: str | None
    day: date
    cost: float
    expected: float
    score: float

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "team": self.team,
            "stage": self.stage,
            "date": self.day.isoformat(),
            "cost": self.cost,
            "expected": self.expected,
            "score": self.score,
        }


def _series(
    ctx: Context, start: date, end: date, basis: Basis
) -> dict[str, tuple[str | None, str | None, str | None, dict[date, float]]]:
    """Daily spend per (model, stage), per team and unattributed, keyed by series name."""
    out: dict[str, tuple[str | None, str | None, str | None, dict[date, float]]] = {}

    def add(key: str, model: str | None, team: str | None, stage: str | None, day: date, cost: float) -> None:
        daily = out.setdefault(key, (model, team, stage, {}))[3]
        daily[day] = daily.get(day, 0.0) + cost

    for g in ctx.store.spend_by(start, end, ["model", "team", "stage", "day"], basis):
        assert g.day is not None
        if g.model is None:
            add("unattributed", None, None, None, g.day, g.cost)
        else:
            cfg = ctx.models.get(g.model)
            team = cfg.team if cfg is not None and cfg.team else g.team
            add(f"model:{g.model}:{g.stage}", g.model, team, g.stage, g.day, g.cost)
        if g.team is not None:
            add(f"team:{g.team}", None, g.team, None, g.day, g.cost)
    return out


def find_anomalies(ctx: Context, start: date, end: date, basis: Basis | None = None) -> list[SpendAnomaly]:
    """Run the spend detector over the ledger's daily series and return the anomalies dated in
    ``[start, end]``. Each day is judged from the days before it only, reading up to
    ``costs.anomaly_history_days`` days before ``start``; a level shift is reported on the day it
    starts, not on every day after it."""
    costs = ctx.service.costs
    basis = basis or costs.basis
    read_from = start - timedelta(days=costs.anomaly_history_days)
    default = ctx.service.policy.spend_anomaly_sensitivity
    found = []
    for key, (model, team, stage, daily) in sorted(_series(ctx, read_from, end, basis).items()):
        first = min(daily)
        days = [first + timedelta(days=i) for i in range((end - first).days + 1)]
        cfg = ctx.models.get(model) if model else None
        sensitivity = ctx.policy(cfg).spend_anomaly_sensitivity if cfg is not None else default
        detector = SpendDetector(
            sensitivity=sensitivity, min_cost=costs.anomaly_min_cost, window=costs.anomaly_history_days
        )
        values = np.array([daily.get(d, 0.0) for d in days])
        for d in detector.run(values, weekday0=first.weekday()):
            when = days[d.day]
            if d.anomaly and start <= when and d.expected is not None:
                found.append(SpendAnomaly(key, model, team, stage, when, d.cost, d.expected, d.score))
    return sorted(found, key=lambda a: (a.day, a.series))


def drivers(ctx: Context, a: SpendAnomaly, basis: Basis, limit: int = 5) -> list[dict[str, Any]]:
    """The resources (and their stage and service) whose spend grew most on the anomaly's day
    against their mean over the week before."""
    found = ctx.store.resource_spend(
        a.day,
        a.day - timedelta(days=7),
        basis,
        model=a.model,
        team=a.team if a.model is None else None,
        stage=a.stage,
        unattributed=a.series == "unattributed",
        limit=limit,
    )
    keys = ("stage", "resource_id", "service_name", "cost")
    return [{k: getattr(r, k) for k in keys} | {"usual": r.before} for r in found]


def check_spend(ctx: Context, now: datetime | None = None, days: int = 7) -> list[SpendAnomalyRow]:
    """The daily spend check: anomalies of the ledger's last ``days`` days (billing restates recent
    days), each recorded once and sent once to its owner as a signed ``cost.anomaly`` webhook
    through the outbox (a team's to each of its models' endpoints; unattributed spend has no owner
    and is only recorded). Returns the anomalies new to the store."""
    now = now or ctx.clock()
    span = ctx.store.ledger_span()
    if span is None:
        return []
    end = min(span[1], now.date())
    basis = ctx.service.costs.basis
    found = find_anomalies(ctx, end - timedelta(days=days - 1), end, basis)
    records = [
        {
            "series": a.series,
            "model": a.model,
            "team": a.team,
            "stage": a.stage,
            "day": a.day,
            "cost": a.cost,
            "expected": a.expected,
            "score": a.score,
            "drivers": drivers(ctx, a, basis),
        }
        for a in found
    ]
    new = ctx.store.record_spend_anomalies(records, now)
    currency = ctx.store.spend_totals(end - timedelta(days=days - 1), end, basis).currencies
    for row in new:
        for cfg in _owners(ctx, row):
            event = {
                "type": "cost.anomaly",
                "model": cfg.name,
                "timestamp": now.isoformat(),
                "data": {
                    "series": row.series,
                    "model": row.model,
                    "team": row.team,
                    "stage": row.stage,
                    "date": row.day.isoformat(),
                    "cost": row.cost,
                    "expected": row.expected,
                    "score": row.score,
                    "currency": currency[0] if len(currency) == 1 else None,
                    "basis": basis,
                    "owner": cfg.owner,
                    "drivers": row.drivers,
                },
            }
            key = f"webhook:cost_anomaly:{row.series}:{row.day.isoformat()}:{cfg.name}"
            ctx.store.enqueue(cfg.name, "webhook", key, event, now)
    return new


def _owners(ctx: Context, row: SpendAnomalyRow) -> list[ModelConfig]:
    """Who hears of an anomaly: the model's endpoint, or one model per distinct endpoint of the team."""
    if row.model is not None:
        cfg = ctx.models.get(row.model)
        return [cfg] if cfg is not None and cfg.notify.url else []
    if row.team is None:
        return []
    seen: dict[str, ModelConfig] = {}
    for cfg in sorted(ctx.models.values(), key=lambda c: c.name):
        if cfg.team == row.team and cfg.notify.url and cfg.notify.url not in seen:
            seen[cfg.notify.url] = cfg
    return list(seen.values())


# ROI audit ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetrainsAudit:
    count: int
    estimated: float
    """Sum of the retrains' cost estimates."""
    billed: float | None
    """Sum of their billed costs (with labeling and overhead), for those billing has named; None: none yet."""
    billed_count: int
    recovered_value: float | None
    """Value the retrains bought back, measured after them (points regained x value of a point x
    traffic, over the days left in the month); None when nothing was measured."""


@dataclass(frozen=True)
class ModelRoi:
    model: str
    owner: str | None
    team: str | None
    spend_by_stage: dict[str, float]
    spend: float
    cost_source: str
    value: float | None
    retrains: RetrainsAudit
    roi: float | None
    verdict: str
    """``keep``, ``review`` or ``retire``."""
    reasons: list[str]
    idle: bool
    duplicate_of: list[str]


@dataclass(frozen=True)
class RoiReport:
    month: str
    currency: str | None
    models: list[ModelRoi]
    idle: list[str]
    duplicates: list[list[str]]
    unattributed: float

    def to_json(self) -> dict[str, Any]:
        from controller.adapters.store.records import to_jsonable

        out: dict[str, Any] = to_jsonable(self)
        return out


def parse_month(text: str | None, now: datetime) -> tuple[int, int]:
    if text is None:
        return now.year, now.month
    try:
        when = datetime.strptime(text, "%Y-%m")
    except ValueError:
        raise UserError(f"--month: expected YYYY-MM, got {text!r}") from None
    return when.year, when.month


def _traffic_per_day(ctx: Context, cfg: ModelConfig) -> tuple[float | None, str]:
    """Predictions per day: measured from the newest checks' windows, else the config's."""
    checks = [c for c in ctx.store.checks(cfg.name, limit=10) if c.status == "done" and c.n_rows is not None]
    if checks:
        per_window = float(np.mean([c.n_rows or 0 for c in checks]))
        return per_window / (cfg.data.window_hours / 24.0), "measured"
    return (cfg.economics.traffic_per_day if cfg.economics else None), "config"


def _features(ctx: Context, cfg: ModelConfig) -> frozenset[str]:
    if cfg.features:
        return frozenset(cfg.features)
    for c in ctx.store.checks(cfg.name, limit=5):
        columns = ((c.signals or {}).get("drift") or {}).get("columns") or []
        names = {col.get("column") for col in columns if isinstance(col, dict) and col.get("column")}
        if names:
            return frozenset(str(n) for n in names)
    return frozenset()


def duplicate_groups(ctx: Context) -> list[list[str]]:
    """Models with the same features and the same business purpose under different owners."""
    groups: dict[tuple[str, frozenset[str]], list[ModelConfig]] = {}
    for _, cfg in sorted(ctx.models.items()):
        purpose = " ".join((cfg.business_purpose or "").lower().split())
        features = _features(ctx, cfg)
        if purpose and features:
            groups.setdefault((purpose, features), []).append(cfg)
    return [
        [c.name for c in members]
        for members in groups.values()
        if len(members) > 1 and len({(c.owner or "").lower() for c in members}) > 1
    ]


def _recovered_value(ctx: Context, cfg: ModelConfig, r: RetrainRow, month_end: date) -> float | None:
    """Points regained after a promoted retrain (its version's checks against the champion's last
    check before it; the holdout comparison when no check came after), valued to the month's end."""
    econ = cfg.economics
    if econ is None or r.state != "promoted" or r.challenger_version is None:
        return None
    sign = 1.0 if econ.higher_is_better else -1.0
    checks = [c for c in ctx.store.checks(cfg.name, limit=200) if c.status == "done" and c.metric_value is not None]
    after = [c.metric_value for c in checks if c.version == r.challenger_version and c.started_at >= r.created_at]
    before = [c for c in checks if c.version == r.champion_version and c.started_at <= r.created_at]
    if after and before:
        gained = sign * (float(np.mean([v for v in after if v is not None])) - float(before[0].metric_value or 0.0))
    elif r.challenger_metric is not None and r.champion_metric is not None:
        gained = sign * (r.challenger_metric - r.champion_metric)
    else:
        return None
    days = max((month_end - r.created_at.date()).days + 1, 0)
    return 100.0 * gained * econ.value_per_point * econ.traffic_per_day / 1000.0 * days


def roi_audit(ctx: Context, month: str | None = None) -> RoiReport:
    """The ROI audit of every watched model for a calendar month (default: this one)."""
    now = ctx.clock()
    year, mon = parse_month(month, now)
    first = date(year, mon, 1)
    last = date(year, mon, calendar.monthrange(year, mon)[1])
    as_of = min(now, datetime(last.year, last.month, last.day, 23, 59, 59, tzinfo=UTC))
    duplicates = duplicate_groups(ctx)
    duplicate_of = {m: [o for o in g if o != m] for g in duplicates for m in g}
    basis = ctx.service.costs.basis
    totals = ctx.store.spend_totals(first, last, basis)
    models, idle = [], []
    for name, cfg in sorted(ctx.models.items()):
        policy = ctx.policy(cfg)
        mc = month_cost(ctx, cfg, year, mon, as_of)
        retrains = [r for r in ctx.store.retrains(name, limit=500) if first <= r.created_at.date() <= last]
        billed = [r for r in retrains if r.cost_source == "billed" and r.actual_cost is not None]
        recovered = [v for r in retrains if (v := _recovered_value(ctx, cfg, r, min(last, as_of.date()))) is not None]
        audit = RetrainsAudit(
            count=len(retrains),
            estimated=sum(r.cost_estimate or 0.0 for r in retrains),
            billed=sum(r.actual_cost or 0.0 for r in billed) if billed else None,
            billed_count=len(billed),
            recovered_value=sum(recovered) if recovered else None,
        )
        traffic, traffic_source = _traffic_per_day(ctx, cfg)
        serving = sum(mc.by_stage.get(s, 0.0) for s in RUNNING_STAGES)
        is_idle = (
            policy.idle_traffic_per_day > 0
            and serving > 0
            and traffic is not None
            and traffic < policy.idle_traffic_per_day
        )
        over, _ = months_over_value(ctx, cfg, as_of, policy.kill_periods)
        reasons = []
        if over >= policy.kill_periods:
            reasons.append(f"cost more than it earned for {over} months (kill criteria: {policy.kill_periods})")
        if mc.value is not None and mc.cost > mc.value:
            reasons.append(f"cost {mc.cost:,.2f} against {mc.value:,.2f} earned this month")
        if mc.value is None:
            reasons.append("no revenue_per_day in its economics: its value is unknown")
        if is_idle:
            reasons.append(
                f"idle: {serving:,.2f} of serving spend at {traffic:,.0f} predictions a day ({traffic_source}; "
                f"threshold {policy.idle_traffic_per_day:,.0f}): scale it down"
            )
            idle.append(name)
        if name in duplicate_of:
            reasons.append(f"duplicate of {', '.join(duplicate_of[name])} (same features and purpose): merge them")
        if audit.billed is not None and audit.recovered_value is not None and audit.recovered_value < audit.billed:
            reasons.append("its retrains this month bought back less than they cost")
        verdict = "retire" if over >= policy.kill_periods else ("review" if reasons else "keep")
        value = mc.value
        roi = (value - mc.cost) / mc.cost if value is not None and mc.cost > 0 else None
        models.append(
            ModelRoi(
                name,
                cfg.owner,
                cfg.team,
                {s: mc.by_stage.get(s, 0.0) for s in STAGES if s in mc.by_stage},
                mc.cost,
                mc.source,
                value,
                audit,
                roi,
                verdict,
                reasons,
                is_idle,
                duplicate_of.get(name, []),
            )
        )
    currency = totals.currencies[0] if len(totals.currencies) == 1 else None
    return RoiReport(f"{year:04d}-{mon:02d}", currency, models, idle, duplicates, totals.unattributed)
