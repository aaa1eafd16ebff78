"""What the console's pages and its JSON API show, read from the store in a few queries per page.

Each function takes the :class:`Fleet` (the configured models, read once when the app starts) and
the store, and returns frozen dataclasses: the templates render them and the API returns them
as JSON, so a page and its API never disagree.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from controller.adapters.store.records import FleetRecord, RetrainCost, TimelinePoint
from controller.adapters.store.store import Store
from controller.adapters.store.tables import month_of
from controller.config import ModelConfig, ServiceConfig, resolve_policy
from controller.core.economics import loss_per_day
from controller.core.governance import governance_violations

COST_SOURCE = "retrain estimates"
"""Where the Costs page's figures come from while the cost ledger holds no billing rows."""
LEDGER_SOURCE = "billing ledger (FOCUS exports)"
"""Where they come from once billing exports were imported (``retrainctl costs import``)."""


@dataclass(frozen=True)
class Fleet:
    """The configured models and what the pages need of their config, resolved once."""

    service: ServiceConfig
    models: Mapping[str, ModelConfig]
    budgets: Mapping[str, float | None]
    """Each model's monthly budget (its resolved policy)."""

    @classmethod
    def of(cls, service: ServiceConfig, models: Mapping[str, ModelConfig]) -> Fleet:
        return cls(
            service, dict(models), {name: resolve_policy(service, cfg).monthly_budget for name, cfg in models.items()}
        )

    def team(self, model: str) -> str | None:
        cfg = self.models.get(model)
        return cfg.team if cfg else None

    def currency(self, model: str) -> str:
        cfg = self.models.get(model)
        return cfg.economics.currency if cfg and cfg.economics else ""


@dataclass(frozen=True)
class FleetRow:
    """One model on the Fleet page, sorted by money at stake (its expected loss per day)."""

    model: str
    team: str | None
    owner: str | None
    registered_model: str
    version: str | None
    decision: str | None
    reasons: list[str]
    summary: str | None
    source: str | None
    decided_at: datetime | None
    metric: str | None
    metric_now: float | None
    metric_baseline: float | None
    drift_share: float | None
    loss_per_day: float | None
    retrain_cost: float | None
    net_value: float | None
    roi: float | None
    spend_this_month: float
    monthly_budget: float | None
    last_retrain_at: datetime | None
    last_retrain_state: str | None
    last_check_status: str | None
    currency: str


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def fleet_rows(
    fleet: Fleet,
    store: Store,
    now: datetime,
    team: str | None = None,
    decision: str | None = None,
    owner: str | None = None,
) -> list[FleetRow]:
    """Every configured model (filtered by team, decision and owner), money at stake first."""
    names = [
        n
        for n, cfg in fleet.models.items()
        if (team is None or cfg.team == team) and (owner is None or cfg.owner == owner)
    ]
    latest = store.fleet(names)
    if decision is not None:
        names = [n for n in names if n in latest and latest[n].action == decision]
    retrains = store.last_retrains()
    spend = store.spend_by_scope([month_of(now)])
    rows = [_fleet_row(fleet, name, latest.get(name), retrains.get(name), spend, month_of(now)) for name in names]
    rows.sort(key=lambda r: (-(r.loss_per_day or 0.0), -(r.net_value or 0.0), r.model))
    return rows


def _fleet_row(
    fleet: Fleet,
    name: str,
    d: FleetRecord | None,
    retrain: Any,
    spend: Mapping[tuple[str, str], float],
    month: str,
) -> FleetRow:
    cfg = fleet.models[name]
    n = (d.numbers if d else None) or {}
    return FleetRow(
        model=name,
        team=cfg.team,
        owner=cfg.owner,
        registered_model=cfg.registered_model,
        version=d.version if d else None,
        decision=d.action if d else None,
        reasons=list((d.reasons if d else None) or []),
        summary=d.summary if d else None,
        source=d.signal_source if d else None,
        decided_at=d.decided_at if d else None,
        metric=d.metric if d else None,
        metric_now=_finite(d.metric_value) if d else None,
        metric_baseline=_finite(d.metric_baseline) if d else None,
        drift_share=_finite(d.drift_share) if d else None,
        loss_per_day=_finite(n.get("loss_per_day")),
        retrain_cost=_finite(n.get("retrain_cost")),
        net_value=_finite(n.get("net_value")),
        roi=_finite(n.get("roi")),
        spend_this_month=spend.get((f"model:{name}", month), 0.0),
        monthly_budget=fleet.budgets.get(name),
        last_retrain_at=retrain.created_at if retrain else None,
        last_retrain_state=retrain.state if retrain else None,
        last_check_status=d.check_status if d else None,
        currency=fleet.currency(name),
    )


@dataclass(frozen=True)
class ColumnDriftView:
    column: str
    test: str | None
    score: float | None
    threshold: float | None
    drifted: bool
    status: str


@dataclass(frozen=True)
class RetrainView:
    id: int
    state: str
    created_at: datetime
    champion_version: str | None
    challenger_version: str | None
    champion_metric: float | None
    challenger_metric: float | None
    cost_estimate: float | None
    actual_cost: float | None
    cost_anomaly: bool
    recovered_per_day: float | None
    """What the promoted challenger's metric gain is worth per day (the model's economics)."""


@dataclass(frozen=True)
class OverrideView:
    id: int
    model: str
    kind: str
    author: str
    reason: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class DecisionView:
    decision: str
    reasons: list[str]
    summary: str
    source: str
    decided_at: datetime
    version: str | None
    numbers: dict[str, Any]
    retry_after: datetime | None
    needs_approval: bool


@dataclass(frozen=True)
class ModelPage:
    """Everything on one model's page."""

    row: FleetRow
    business_purpose: str | None
    latest: DecisionView | None
    drift_check_id: int | None
    drift: list[ColumnDriftView]
    drift_report_run: str | None
    retrains: list[RetrainView]
    overrides: list[OverrideView]
    timeline: list[TimelinePoint] = field(default_factory=list)


def model_page(fleet: Fleet, store: Store, name: str, now: datetime, limit: int = 500) -> ModelPage:
    """One model: its fleet row, newest decision, timeline, per-column drift, retrains, overrides."""
    cfg = fleet.models[name]
    month = month_of(now)
    latest = store.fleet([name]).get(name)
    retrain_rows = store.retrains(name, limit=50)
    spend = store.spend_by_scope([month])
    row = _fleet_row(fleet, name, latest, retrain_rows[0] if retrain_rows else None, spend, month)
    decision = store.latest_decision(name)
    newest = store.newest_signals(name)
    signals = newest[1] if newest else {}
    columns = (signals.get("drift") or {}).get("columns") or []
    return ModelPage(
        row=row,
        business_purpose=cfg.business_purpose,
        latest=None
        if decision is None
        else DecisionView(
            decision.action,
            list(decision.reasons),
            decision.summary,
            decision.signal_source,
            decision.decided_at,
            decision.version,
            dict(decision.numbers),
            decision.retry_after,
            bool(decision.needs_approval),
        ),
        drift_check_id=newest[0] if newest else None,
        drift=sorted(
            (
                ColumnDriftView(
                    str(c.get("column")),
                    c.get("test"),
                    _finite(c.get("score")),
                    _finite(c.get("threshold")),
                    bool(c.get("drifted")),
                    str(c.get("status", "ok")),
                )
                for c in columns
            ),
            key=lambda c: (not c.drifted, c.column),
        ),
        drift_report_run=signals.get("drift_report_run"),
        retrains=[
            RetrainView(
                r.id,
                r.state,
                r.created_at,
                r.champion_version,
                r.challenger_version,
                r.champion_metric,
                r.challenger_metric,
                r.cost_estimate,
                r.actual_cost,
                bool(r.cost_anomaly),
                _recovered_per_day(cfg, r.state, r.champion_metric, r.challenger_metric),
            )
            for r in retrain_rows
        ],
        overrides=[_override_view(o) for o in store.overrides_in_force(now, name)],
        timeline=store.timeline(name, limit),
    )


def _override_view(o: Any) -> OverrideView:
    return OverrideView(o.id, o.model, o.kind, o.author, o.reason, o.created_at, o.expires_at)


def _recovered_per_day(cfg: ModelConfig, state: str, champion: float | None, challenger: float | None) -> float | None:
    """The loss per day a promoted challenger took back: its gain in points, priced by the economics."""
    econ = cfg.economics
    if state != "promoted" or econ is None or champion is None or challenger is None:
        return None
    gain = 100.0 * (challenger - champion if econ.higher_is_better else champion - challenger)
    return loss_per_day(econ, gain)


# costs -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpendLine:
    key: str
    month: str
    amount: float
    retrains: int


@dataclass(frozen=True)
class TeamBudget:
    team: str
    spent_this_month: float
    budget: float | None
    left: float | None


@dataclass(frozen=True)
class AnomalyView:
    """A retrain whose billed cost was far off its estimate."""

    model: str
    created_at: datetime
    state: str
    cost_estimate: float | None
    actual_cost: float | None


@dataclass(frozen=True)
class SpendAnomalyView:
    """A day of a spend series the detector flagged (``retrainctl costs check``)."""

    series: str
    model: str | None
    day: date
    cost: float
    expected: float
    score: float


@dataclass(frozen=True)
class CostReport:
    """Spend by team, stage and month; anomalies; spend no model or team owns."""

    source: str
    by_team: list[SpendLine]
    by_stage: list[SpendLine]
    by_month: list[SpendLine]
    team_budgets: list[TeamBudget]
    anomalies: list[AnomalyView]
    unattributed: list[SpendLine]
    currency: str
    spend_anomalies: list[SpendAnomalyView] = field(default_factory=list)


def spend_report(fleet: Fleet, store: Store, now: datetime, months: int = 6) -> CostReport:
    """The Costs page: measured spend from the cost ledger where billing exports were imported, and
    otherwise the retrains' billed or estimated costs (every figure says its source)."""
    since = (now.replace(day=1) - timedelta(days=31 * (months - 1))).replace(day=1, hour=0, minute=0, second=0)
    costs = store.retrain_costs(since)
    if store.ledger_span() is not None:
        return _ledger_report(fleet, store, since.date(), now.date(), costs)
    by_team: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_stage: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_month: dict[tuple[str, str], list[float]] = defaultdict(list)
    unattributed: dict[tuple[str, str], list[float]] = defaultdict(list)
    for c in costs:
        amount = _cost_of(c)
        if amount is None:
            continue
        month = month_of(c.created_at)
        team = fleet.team(c.model)
        by_month[("all", month)].append(amount)
        by_stage[("retrain", month)].append(amount)
        if team:
            by_team[(team, month)].append(amount)
        else:
            unattributed[(c.model, month)].append(amount)
    this_month = month_of(now)
    spend = store.spend_by_scope([this_month])
    teams = sorted({cfg.team for cfg in fleet.models.values() if cfg.team} | set(fleet.service.team_budgets))
    budgets = []
    for team in teams:
        spent = spend.get((f"team:{team}", this_month), 0.0)
        cap = fleet.service.team_budgets.get(team)
        budgets.append(TeamBudget(team, spent, cap, None if cap is None else cap - spent))
    currencies = {fleet.currency(m) for m in fleet.models} - {""}
    return CostReport(
        source=COST_SOURCE,
        by_team=_lines(by_team),
        by_stage=_lines(by_stage),
        by_month=_lines(by_month),
        team_budgets=budgets,
        anomalies=[
            AnomalyView(c.model, c.created_at, c.state, c.cost_estimate, c.actual_cost) for c in costs if c.cost_anomaly
        ],
        unattributed=_lines(unattributed),
        currency=currencies.pop() if len(currencies) == 1 else "",
    )


def _ledger_report(fleet: Fleet, store: Store, start: date, end: date, costs: list[RetrainCost]) -> CostReport:
    """The Costs page from the ledger: spend by team, stage and month, the spend no model owns, this
    month's team budgets against what the ledger measured, and the spend anomalies found."""
    by_team: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_stage: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_month: dict[tuple[str, str], list[float]] = defaultdict(list)
    unattributed: dict[tuple[str, str], list[float]] = defaultdict(list)
    currencies: set[str] = set()
    for month, groups in store.spend_by_month(start, end, by=("model", "team", "stage")).items():
        for g in groups:
            by_month[("all", month)].append(g.cost)
            by_stage[(g.stage or "other", month)].append(g.cost)
            if g.model is None:
                unattributed[("unattributed", month)].append(g.cost)
            elif g.team:
                by_team[(g.team, month)].append(g.cost)
            if g.currency:
                currencies.add(g.currency)
    this_month = end.strftime("%Y-%m")
    spent: defaultdict[str, float] = defaultdict(float)
    for g in store.spend_by(end.replace(day=1), end, ["team"]):
        spent[g.team or ""] += g.cost
    teams = sorted({cfg.team for cfg in fleet.models.values() if cfg.team} | set(fleet.service.team_budgets))
    budgets = []
    for team in teams:
        cap = fleet.service.team_budgets.get(team)
        budgets.append(TeamBudget(team, spent[team], cap, None if cap is None else cap - spent[team]))
    return CostReport(
        source=f"{LEDGER_SOURCE}, {this_month} to date",
        by_team=_sums(by_team),
        by_stage=_sums(by_stage),
        by_month=_sums(by_month),
        team_budgets=budgets,
        anomalies=[
            AnomalyView(c.model, c.created_at, c.state, c.cost_estimate, c.actual_cost) for c in costs if c.cost_anomaly
        ],
        unattributed=_sums(unattributed),
        currency=currencies.pop() if len(currencies) == 1 else "",
        spend_anomalies=[
            SpendAnomalyView(a.series, a.model, a.day, a.cost, a.expected, a.score)
            for a in store.spend_anomalies(start, end)
        ],
    )


def _sums(groups: Mapping[tuple[str, str], list[float]]) -> list[SpendLine]:
    """Ledger lines: the spend of each (key, month); no retrain count (the bill does not say)."""
    return [SpendLine(k, m, sum(v), 0) for (k, m), v in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def _cost_of(c: RetrainCost) -> float | None:
    """A retrain's billed cost once known, else its estimate."""
    return c.actual_cost if c.actual_cost is not None else c.cost_estimate


def _lines(groups: Mapping[tuple[str, str], list[float]]) -> list[SpendLine]:
    return [
        SpendLine(k, m, sum(v), len(v)) for (k, m), v in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    ]


# savings -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SavingsRow:
    model: str
    days_checked: float
    checks: int
    retrains: int
    controller_cost: float
    periodic_retrains: int
    cost_per_retrain: float | None
    periodic_cost: float | None
    saved: float | None


@dataclass(frozen=True)
class SavingsReport:
    period_days: float
    rows: list[SavingsRow]
    controller_cost: float
    periodic_cost: float
    saved: float
    assumption: str


def savings_report(fleet: Fleet, store: Store) -> SavingsReport:
    """The controller's retrains against a periodic schedule replayed on the same check history."""
    period = fleet.service.console.savings_period_days
    spans = store.check_spans()
    costs: dict[str, list[float]] = defaultdict(list)
    for c in store.retrain_costs():
        amount = _cost_of(c)
        if amount is not None:
            costs[c.model].append(amount)
    latest = store.fleet([n for n in fleet.models if n in spans])
    rows = []
    for name in sorted(n for n in fleet.models if n in spans):
        span = spans[name]
        days = (span.last - span.first).total_seconds() / 86400.0
        spent = costs.get(name, [])
        estimate = _finite((latest[name].numbers or {}).get("retrain_cost")) if name in latest else None
        per_retrain = sum(spent) / len(spent) if spent else estimate
        periodic_n = int(days // period)
        periodic = None if per_retrain is None else periodic_n * per_retrain
        rows.append(
            SavingsRow(
                name,
                days,
                span.checks,
                len(spent),
                sum(spent),
                periodic_n,
                per_retrain,
                periodic,
                None if periodic is None else periodic - sum(spent),
            )
        )
    controller = sum(r.controller_cost for r in rows if r.periodic_cost is not None)
    periodic_total = sum(r.periodic_cost or 0.0 for r in rows)
    return SavingsReport(
        period,
        rows,
        controller,
        periodic_total,
        periodic_total - controller,
        f"A periodic schedule retrains each model every {period:g} days over the span of its check history "
        f"(first to last finished check), at the mean cost of its own retrains (billed cost when known, else "
        f"the estimate; the newest decision's estimate for a model never retrained). It counts retrain costs "
        f"only: the loss either policy left unrecovered between retrains is not priced here.",
    )


# governance --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Breach:
    model: str
    owner: str | None
    team: str | None
    violations: list[str]


@dataclass(frozen=True)
class GovernanceReport:
    breaches: list[Breach]
    compliant: int
    overrides: list[OverrideView]


def governance_report(
    fleet: Fleet, store: Store, now: datetime, owner_tags: Mapping[str, Mapping[str, str]]
) -> GovernanceReport:
    """The audit's breaches (``retrainctl audit``'s rules) and the overrides in force.

    ``owner_tags`` holds each registered model's tags (owner, business purpose) where they could
    be read; the config file wins over them, as in the check."""
    month = month_of(now)
    spend = store.spend_by_scope([month])
    breaches = []
    for name, cfg in sorted(fleet.models.items()):
        tags = owner_tags.get(cfg.registered_model, {})
        owner = cfg.owner or tags.get("owner")
        violations = governance_violations(
            owner,
            cfg.business_purpose or tags.get("business_purpose"),
            cfg.economics,
            team=cfg.team,
            monthly_spend=spend.get((f"model:{name}", month), 0.0),
            monthly_budget=fleet.budgets.get(name),
        )
        if violations:
            breaches.append(Breach(name, owner, cfg.team, violations))
    return GovernanceReport(
        breaches,
        len(fleet.models) - len(breaches),
        [_override_view(o) for o in store.overrides_in_force(now) if o.model in fleet.models],
    )


def teams_and_owners(fleet: Fleet) -> tuple[list[str], list[str]]:
    """The values the Fleet page's filters offer."""
    return _distinct(c.team for c in fleet.models.values()), _distinct(c.owner for c in fleet.models.values())


def _distinct(values: Iterable[str | None]) -> list[str]:
    return sorted({v for v in values if v})
