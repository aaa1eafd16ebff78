"""The decision: TRIGGER, DEFER or VETO a retrain, as a pure function.

``decide`` takes the signals of one check, the model's economics, its state, its policy and the
time, and returns a frozen :class:`Decision`. It reads no clock, does no I/O and keeps no state:
the caller gathers everything and acts on the result.

VETO reasons always win over everything else; then the cooldown; then the money.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from controller.economics import CostEstimate, EconomicsConfig, loss_per_day
from controller.policy import PolicyConfig


class Action(StrEnum):
    TRIGGER = "TRIGGER"
    DEFER = "DEFER"
    VETO = "VETO"


class Reason(StrEnum):
    """Machine-readable reason codes carried by every decision."""

    NO_OWNER = "no_owner"
    NO_COST_METADATA = "no_cost_metadata"
    DATA_QUALITY = "data_quality_failure"
    BUDGET_EXHAUSTED = "budget_exhausted"
    RETRAIN_RUNNING = "retrain_in_flight"
    FUTILE = "futile_history"
    KILL_CRITERIA = "kill_criteria"
    MANUAL_VETO = "manual_veto"
    MANUAL_APPROVAL = "manual_approval"
    COOLDOWN = "cooldown"
    NO_EVIDENCE = "no_performance_evidence"
    WITHIN_TOLERANCE = "within_tolerance"
    NOT_SIGNIFICANT = "drop_not_significant"
    NOT_WORTH_IT = "not_worth_it"
    DRIFT_ONLY = "drift_without_decay"
    PAYS = "decay_costs_more_than_retrain"
    NEEDS_APPROVAL = "awaiting_owner_approval"


@dataclass(frozen=True)
class Signals:
    """What one check measured. Metric values are on the metric's own scale (0..1 for accuracy)."""

    metric: str
    baseline: float | None
    current: float | None
    source: str = "none"
    """``realized`` (labels arrived), ``estimated`` (label-free) or ``none``."""
    current_low: float | None = None
    current_high: float | None = None
    drift_share: float | None = None
    dataset_drift: bool = False
    quality_failures: tuple[str, ...] = ()
    n_rows: int = 0


@dataclass(frozen=True)
class Economics:
    """The money side of one decision."""

    config: EconomicsConfig
    cost: CostEstimate
    recovery_probability: float = 0.8


@dataclass(frozen=True)
class ModelState:
    """What the store knows about the model at decision time."""

    owner: str | None
    has_cost_metadata: bool = True
    retrain_in_flight: bool = False
    last_retrain_at: datetime | None = None
    spent_this_month: float = 0.0
    team_spent_this_month: float = 0.0
    team_budget: float | None = None
    recent_recoveries: tuple[bool, ...] = ()
    """Whether each past retrain recovered the metric, oldest first."""
    last_action: Action | None = None
    manual_veto: str | None = None
    manual_approval: str | None = None
    months_cost_over_value: int = 0


@dataclass(frozen=True)
class Numbers:
    drop_points: float
    loss_per_day: float
    expected_recovery: float
    retrain_cost: float
    net_value: float
    roi: float
    budget_left: float | None
    flip_drop_points: float | None = None
    """The drop (points) at which the money side would trigger."""


@dataclass(frozen=True)
class Decision:
    action: Action
    reasons: tuple[Reason, ...]
    summary: str
    numbers: Numbers
    signal_source: str
    decided_at: datetime
    retry_after: datetime | None = None
    needs_approval: bool = False
    details: dict[str, str] = field(default_factory=dict)

    @property
    def reason_codes(self) -> list[str]:
        return [r.value for r in self.reasons]


def drop_points(signals: Signals, higher_is_better: bool) -> float:
    """The metric's drop against baseline in points (positive = worse)."""
    if signals.baseline is None or signals.current is None:
        return 0.0
    delta = signals.baseline - signals.current
    return 100.0 * (delta if higher_is_better else -delta)


def _budget_left(state: ModelState, policy: PolicyConfig) -> float | None:
    lefts = []
    if policy.monthly_budget is not None:
        lefts.append(policy.monthly_budget - state.spent_this_month)
    if state.team_budget is not None:
        lefts.append(state.team_budget - state.team_spent_this_month)
    return min(lefts) if lefts else None


def decide(
    signals: Signals,
    economics: Economics | None,
    state: ModelState,
    policy: PolicyConfig,
    now: datetime,
) -> Decision:
    """Decide whether to retrain. Pure: everything it needs comes in as arguments."""
    cfg = economics.config if economics else None
    drop = drop_points(signals, cfg.higher_is_better if cfg else True)
    cost = economics.cost.expected if economics else 0.0
    loss = loss_per_day(cfg, drop) if cfg else 0.0
    p = economics.recovery_probability if economics else 0.0
    recovery = loss * policy.horizon_days * p
    net = recovery - cost
    roi = net / cost if cost > 0 else (float("inf") if net > 0 else 0.0)
    budget_left = _budget_left(state, policy)
    flip = _flip_drop(economics, policy)
    numbers = Numbers(drop, loss, recovery, cost, net, roi, budget_left, flip)

    def out(action: Action, reasons: list[Reason], summary: str, **kw: object) -> Decision:
        return Decision(action, tuple(reasons), summary, numbers, signals.source, now, **kw)  # type: ignore[arg-type]

    vetoes: list[Reason] = []
    if policy.require_owner and not (state.owner or "").strip():
        vetoes.append(Reason.NO_OWNER)
    if policy.require_cost_metadata and (economics is None or not state.has_cost_metadata):
        vetoes.append(Reason.NO_COST_METADATA)
    if signals.quality_failures:
        vetoes.append(Reason.DATA_QUALITY)
    if state.manual_veto:
        vetoes.append(Reason.MANUAL_VETO)
    if state.retrain_in_flight:
        vetoes.append(Reason.RETRAIN_RUNNING)
    n = policy.futility_window
    if len(state.recent_recoveries) >= n and not any(state.recent_recoveries[-n:]):
        vetoes.append(Reason.FUTILE)
    if state.months_cost_over_value >= policy.kill_periods:
        vetoes.append(Reason.KILL_CRITERIA)
    if budget_left is not None and budget_left < cost:
        vetoes.append(Reason.BUDGET_EXHAUSTED)
    if vetoes:
        return out(Action.VETO, vetoes, _veto_sentence(vetoes, signals))

    if state.manual_approval:
        return out(Action.TRIGGER, [Reason.MANUAL_APPROVAL], f"Approved by hand: {state.manual_approval}.")

    if state.last_retrain_at is not None:
        ready = state.last_retrain_at + timedelta(hours=policy.cooldown_hours)
        if now < ready:
            return out(
                Action.DEFER,
                [Reason.COOLDOWN],
                f"Last retrain was less than {policy.cooldown_hours:g} h ago; re-check after the cooldown.",
                retry_after=ready,
            )

    recheck = now + timedelta(hours=policy.defer_recheck_hours)
    if signals.source == "none" or signals.current is None or signals.baseline is None:
        reasons = [Reason.NO_EVIDENCE] + ([Reason.DRIFT_ONLY] if signals.dataset_drift else [])
        return out(
            Action.DEFER,
            reasons,
            "No performance figure yet (no labels and no estimate); drift alone does not price a retrain.",
            retry_after=recheck,
        )
    if drop < policy.tolerance_points:
        reasons = [Reason.WITHIN_TOLERANCE] + ([Reason.DRIFT_ONLY] if signals.dataset_drift else [])
        what = "Inputs drifted but" if signals.dataset_drift else "The"
        return out(
            Action.DEFER,
            reasons,
            f"{what} {signals.metric} is {drop:+.2f} points from baseline, inside the "
            f"{policy.tolerance_points:g}-point tolerance ({signals.source}).",
            retry_after=recheck,
        )
    if not _significant(signals, cfg.higher_is_better if cfg else True):
        return out(
            Action.DEFER,
            [Reason.NOT_SIGNIFICANT],
            f"{signals.metric} dropped {drop:.2f} points but the interval still reaches the baseline.",
            retry_after=recheck,
        )
    min_roi = policy.min_roi * (1 + policy.hysteresis) if state.last_action == Action.DEFER else policy.min_roi
    if roi < min_roi or net < policy.min_net_value:
        flip_text = f"; triggers when the drop reaches {flip:.2f} points" if flip is not None else ""
        return out(
            Action.DEFER,
            [Reason.NOT_WORTH_IT],
            f"{signals.metric} dropped {drop:.2f} points ({signals.source}), costing {loss:,.0f}/day; "
            f"a retrain at {cost:,.0f} would return {net:,.0f} net (ROI {roi:.2f} < {min_roi:.2f}){flip_text}.",
            retry_after=recheck,
        )
    if policy.approval_threshold is not None and cost > policy.approval_threshold:
        return out(
            Action.DEFER,
            [Reason.PAYS, Reason.NEEDS_APPROVAL],
            f"A retrain pays (net {net:,.0f}) but costs {cost:,.0f}, above the approval threshold "
            f"{policy.approval_threshold:,.0f}: waiting for the owner's approval.",
            retry_after=recheck,
            needs_approval=True,
        )
    return out(
        Action.TRIGGER,
        [Reason.PAYS],
        f"{signals.metric} dropped {drop:.2f} points ({signals.source}), costing {loss:,.0f}/day; "
        f"a retrain at {cost:,.0f} recovers {recovery:,.0f} over {policy.horizon_days:g} days "
        f"(net {net:,.0f}, ROI {roi:.2f}).",
    )


def _significant(signals: Signals, higher_is_better: bool) -> bool:
    """A drop is significant when the current interval lies wholly on the bad side of baseline."""
    if signals.baseline is None:
        return False
    bound = signals.current_high if higher_is_better else signals.current_low
    if bound is None:
        return True
    return bound < signals.baseline if higher_is_better else bound > signals.baseline


def _flip_drop(economics: Economics | None, policy: PolicyConfig) -> float | None:
    if economics is None:
        return None
    cfg, cost = economics.config, economics.cost.expected
    per_point = cfg.value_per_point * cfg.traffic_per_day / 1000.0 * policy.horizon_days
    per_point *= economics.recovery_probability
    if per_point <= 0:
        return None
    needed = max(cost * (1 + policy.min_roi), cost + policy.min_net_value)
    return max(needed / per_point, policy.tolerance_points)


_VETO_TEXT = {
    Reason.NO_OWNER: "the model has no owner",
    Reason.NO_COST_METADATA: "the model has no cost metadata",
    Reason.DATA_QUALITY: "the data failed quality checks",
    Reason.MANUAL_VETO: "an owner vetoed retraining",
    Reason.RETRAIN_RUNNING: "a retrain is already running",
    Reason.FUTILE: "the last retrains did not recover the metric",
    Reason.KILL_CRITERIA: "the model has cost more than it earned for too long: consider retiring it",
    Reason.BUDGET_EXHAUSTED: "the retraining budget is exhausted",
}


def _veto_sentence(reasons: list[Reason], signals: Signals) -> str:
    text = "; ".join(_VETO_TEXT[r] for r in reasons)
    if Reason.DATA_QUALITY in reasons and signals.quality_failures:
        text += f" ({', '.join(signals.quality_failures[:3])})"
    return f"Must not retrain: {text}."
