"""The decision: TRIGGER, DEFER or VETO a retrain, as a pure function.

``decide`` takes the signals of one check, the model's economics, its state, its policy and the
time, and returns a frozen :class:`Decision`. It reads no clock, does no I/O and keeps no state:
the caller gathers everything and acts on the result.

VETO reasons always win over everything else; then the cooldown; then the money.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from controller.core.economics import CostEstimate, EconomicsConfig, loss_per_day
from controller.core.policy import PolicyConfig


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
    WINDOW_NOT_FRESH = "training_window_not_fresh"
    REUSE_VERSION = "promote_registered_version"
    RETRAIN_LATER = "cheaper_to_retrain_later"


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
    decay_points_per_day: float | None = None
    """How fast a freshly retrained model loses metric points per day, learned from the model's history
    (see :func:`controller.economics.decay_rate`); ``None`` = unknown, treated as no decay."""
    window_fresh_share: float | None = None
    """Share of a retrain's training window that postdates the last detected change in the data
    (1 = all of it); ``None`` = no change detected, treated as 1."""
    fresh_window_in_days: float | None = None
    """Days until the training window will hold only data from after the change."""
    regime_days: float | None = None
    """Expected days until the data changes again (:func:`controller.economics.regime_days`), the mean of an
    exponential wait: a retrain's value lasts no longer than the regime it learns, so it is counted over
    the expected part of its cycle that the regime lasts; ``None`` = no change seen."""
    regime_remaining: tuple[float, ...] = ()
    """Days each past regime that lasted at least the current one's age went on beyond it
    (:func:`controller.economics.regime_remaining`): when given, the current regime is expected to end
    like one of them, each as likely, instead of after the exponential wait of ``regime_days``."""
    challenger_version: str | None = None
    """A registered version (e.g. a recent challenger) scored on the current data, for the reuse check."""
    challenger_current: float | None = None
    """That version's metric on the current data, on the same scale as ``current``."""


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
    remaining_days: float | None = None
    """Days the model is planned to keep serving (a retirement date); ``None`` = open-ended."""


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
    horizon_days: float = 0.0
    """Days over which the recovered value was counted: the policy horizon or the renewal cycle, or the
    expected part of it that the regime lasts."""


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
    promote_version: str | None = None
    """Set on a TRIGGER when promoting this registered version replaces training a new one."""

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
    """Decide whether to retrain. Pure: everything it needs comes in as arguments.

    The money rule prices a retrain over its cycle ``L``: the policy horizon, cut short by a planned
    retirement and, when fresh models themselves decay at ``b`` per day (money lost per day, per
    day), by the renewal cycle ``sqrt(2 C / b)`` after which the next retrain would come anyway; when
    the data changes now and then, the part of that span the retrained model's regime is expected to
    last (the next change comes as one of the past regimes that lasted at least the current one's age
    ended, ``regime_remaining``, or else after an exponential time of mean ``regime_days``). A retrain at cost
    ``C`` that recovers the current loss ``l`` per day with chance ``p``
    - pays when ``p l L`` beats ``C (1 + min_roi)``, and
    - is due when ``l >= b L``: the loss already exceeds what the fresh model would lose by the end
      of its cycle, so waiting would not be cheaper (for a steady decay this retrains exactly at
      the optimal renewal interval; without decay it is always due).
    """
    cfg = economics.config if economics else None
    higher = cfg.higher_is_better if cfg else True
    drop = drop_points(signals, higher)
    cost = economics.cost.expected if economics else 0.0
    p = economics.recovery_probability if economics else 0.0
    loss = loss_per_day(cfg, drop) if cfg else 0.0
    decay_points = signals.decay_points_per_day or 0.0
    decay = loss_per_day(cfg, decay_points) if cfg else 0.0
    # the model keeps serving at least until the next check: what is at stake is the drop one day ahead
    ahead = loss_per_day(cfg, drop + decay_points) if cfg and drop > 0 else 0.0
    horizon = _horizon(state, policy)
    left = signals.regime_remaining
    cycle = _cycle(cost, decay, horizon, signals.regime_days, left)
    # the fresh-window rule weighs a stale window's residual up to the forecast change itself, not over
    # the expected cycle: window_residual is a rough guess, and over the shorter span it took stale
    # windows a chunk early (docs/controller.md, the money rule)
    change_in = sum(left) / len(left) if left else signals.regime_days
    span = min(_cycle(cost, decay, horizon), horizon if change_in is None else change_in)
    residual = window_residual(signals.window_fresh_share)
    recovery = p * ahead * (1.0 - residual) * cycle
    net = recovery - cost
    roi = net / cost if cost > 0 else (float("inf") if net > 0 else 0.0)
    budget_left = _budget_left(state, policy)
    min_roi = _required_roi(state, policy)
    flip = _flip_drop(economics, policy, cycle, decay * cycle, residual, min_roi, decay_points)
    numbers = Numbers(drop, loss, recovery, cost, net, roi, budget_left, flip, cycle)

    def out(action: Action, reasons: list[Reason], summary: str, **kw: object) -> Decision:
        return Decision(action, tuple(reasons), summary, numbers, signals.source, now, **kw)  # type: ignore[arg-type]

    vetoes = _vetoes(signals, economics, state, policy, cost, budget_left)
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
    if not _significant(signals, higher):
        return out(
            Action.DEFER,
            [Reason.NOT_SIGNIFICANT],
            f"{signals.metric} dropped {drop:.2f} points but the interval still reaches the baseline.",
            retry_after=recheck,
        )
    wait = _fresh_window_wait(signals, cost, ahead * p, residual, span)
    if wait is not None:
        share = signals.window_fresh_share or 0.0
        return out(
            Action.DEFER,
            [Reason.WINDOW_NOT_FRESH],
            f"{signals.metric} dropped {drop:.2f} points after a change in the data, but only {share:.0%} of "
            f"the training window postdates it: retraining once the window is fresh in {wait:g} days costs "
            "less than retraining now and again later.",
            retry_after=now + timedelta(days=wait),
        )
    if ahead < decay * cycle:
        flip_text = f"; triggers when the drop reaches {flip:.2f} points" if flip is not None else ""
        return out(
            Action.DEFER,
            [Reason.RETRAIN_LATER],
            f"{signals.metric} dropped {drop:.2f} points ({signals.source}), costing {loss:,.0f}/day, less than a "
            f"fresh model will lose by the end of its {cycle:.1f}-day cycle ({decay * cycle:,.0f}/day): "
            f"retraining later is cheaper{flip_text}.",
            retry_after=recheck,
        )
    if roi < min_roi or net < policy.min_net_value:
        flip_text = f"; triggers when the drop reaches {flip:.2f} points" if flip is not None else ""
        return out(
            Action.DEFER,
            [Reason.NOT_WORTH_IT],
            f"{signals.metric} dropped {drop:.2f} points ({signals.source}), costing {loss:,.0f}/day; "
            f"a retrain at {cost:,.0f} would return {net:,.0f} net over {cycle:g} days "
            f"(ROI {roi:.2f} < {min_roi:.2f}){flip_text}.",
            retry_after=recheck,
        )
    promote = _reusable(signals, policy, higher)
    if promote is not None:
        return out(
            Action.TRIGGER,
            [Reason.PAYS, Reason.REUSE_VERSION],
            f"{signals.metric} dropped {drop:.2f} points and a retrain would pay, but registered version "
            f"{promote} already fits the current data: promote it instead of training.",
            promote_version=promote,
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
        f"a retrain at {cost:,.0f} recovers {recovery:,.0f} over {round(cycle, 1):g} days "
        f"(net {net:,.0f}, ROI {roi:.2f}).",
    )


def _vetoes(
    signals: Signals,
    economics: Economics | None,
    state: ModelState,
    policy: PolicyConfig,
    cost: float,
    budget_left: float | None,
) -> list[Reason]:
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
    return vetoes


def _required_roi(state: ModelState, policy: PolicyConfig) -> float:
    """The ROI a TRIGGER needs; after a DEFER the payback must beat it by the hysteresis fraction.

    Applied to the payback ``1 + min_roi`` rather than to ``min_roi`` so it still bites at ``min_roi = 0``.
    """
    if state.last_action != Action.DEFER:
        return policy.min_roi
    return (1.0 + policy.min_roi) * (1.0 + policy.hysteresis) - 1.0


def _significant(signals: Signals, higher_is_better: bool) -> bool:
    """A drop is significant when the current interval lies wholly on the bad side of baseline."""
    if signals.baseline is None:
        return False
    bound = signals.current_high if higher_is_better else signals.current_low
    if bound is None:
        return True
    return bound < signals.baseline if higher_is_better else bound > signals.baseline


def _horizon(state: ModelState, policy: PolicyConfig) -> float:
    """Days over which recovered value counts: the policy's horizon, cut short by a planned retirement."""
    limits = [policy.horizon_days, *(v for v in (state.remaining_days,) if v is not None)]
    return max(min(limits), 0.0)


def _cycle(
    cost: float, decay: float, horizon: float, regime: float | None = None, remaining: tuple[float, ...] = ()
) -> float:
    """Expected days a retrain's value lasts: until the next retrain of a decaying model, at most the
    horizon, and no longer than the regime it learns.

    The regime forecast is a mean (changes as a Poisson process, :func:`controller.economics.regime_days`):
    the next change comes after an exponential time ``T`` of that mean, so the value lasts ``min(T, cap)``
    days, whose expectation ``regime x (1 - exp(-cap / regime))`` is below ``min(regime, cap)``. Capping
    at the mean instead would count a lucky long regime that the forecast does not promise. When past
    regimes that lasted at least the current one's age are known, the regime ends as one of them did:
    ``T`` is each of their ``remaining`` days, equally likely.

    >>> _cycle(50.0, 4.0, 30.0), _cycle(50.0, 0.0, 30.0), round(_cycle(50.0, 0.0, 30.0, regime=30.0), 2)
    (5.0, 30.0, 18.96)
    >>> _cycle(50.0, 0.0, 30.0, regime=30.0, remaining=(8.0, 40.0))
    19.0
    """
    cap = horizon if decay <= 0 else min(horizon, (2.0 * cost / decay) ** 0.5)
    if remaining:
        return sum(min(r, cap) for r in remaining) / len(remaining)
    if regime is None:
        return cap
    if regime <= 0:
        return 0.0
    return regime * -math.expm1(-cap / regime)


def window_residual(fresh_share: float | None) -> float:
    """Share of the drop a retrain leaves behind when only ``fresh_share`` of its window follows a change.

    A model fitted on a mixed window mostly learns whichever regime holds most of the window: under a
    fifth of fresh data it keeps the old one, above four fifths it has the new one, linearly in
    between.

    >>> window_residual(None), window_residual(0.1), round(window_residual(0.5), 3), window_residual(0.9)
    (0.0, 1.0, 0.5, 0.0)
    """
    if fresh_share is None:
        return 0.0
    return min(max((0.8 - fresh_share) / 0.6, 0.0), 1.0)


def _fresh_window_wait(signals: Signals, cost: float, loss: float, residual: float, cycle: float) -> float | None:
    """Days to wait for a fresh training window, when waiting is cheaper than retraining now.

    Retraining now costs the retrain, the residual loss until the window is fresh, then the cheaper
    of a second retrain or living with the residual; waiting costs the full loss until then and one
    retrain.
    """
    days = signals.fresh_window_in_days
    if residual <= 0 or days is None or days <= 0:
        return None
    now = cost + residual * loss * days + min(cost, residual * loss * max(cycle - days, 0.0))
    later = loss * days + cost
    return days if later < now else None


def _reusable(signals: Signals, policy: PolicyConfig, higher_is_better: bool) -> str | None:
    """A registered version whose metric on the current data is within tolerance of the baseline."""
    if signals.challenger_version is None or signals.challenger_current is None or signals.baseline is None:
        return None
    gap = signals.baseline - signals.challenger_current
    gap_points = 100.0 * (gap if higher_is_better else -gap)
    return signals.challenger_version if gap_points <= policy.tolerance_points else None


def _flip_drop(
    economics: Economics | None,
    policy: PolicyConfig,
    cycle: float,
    due_loss: float,
    residual: float,
    min_roi: float,
    decay_points: float,
) -> float | None:
    """The drop (points) at which the money rule would trigger, everything else unchanged.

    Both money rules price the drop one day ahead (``decay_points`` more), so the measured drop that
    flips them is that much lower.
    """
    if economics is None:
        return None
    cfg, cost = economics.config, economics.cost.expected
    point = loss_per_day(cfg, 1.0)
    per_point = point * economics.recovery_probability * (1.0 - residual) * cycle
    if per_point <= 0:
        return None
    needed = max(cost * (1 + min_roi), cost + policy.min_net_value)
    return max(needed / per_point - decay_points, due_loss / point - decay_points, policy.tolerance_points)


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
