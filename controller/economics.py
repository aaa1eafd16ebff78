"""What decay costs and what a retrain costs, in money.

Units: money is in the model's ``currency``; a metric *point* is 0.01 of the metric (one
percentage point of accuracy, 0.01 of ROC AUC); traffic is predictions per day.

Loss per day of a drop of ``d`` points = ``d x value_per_point x traffic_per_day / 1000``:
``value_per_point`` is the money one metric point is worth per 1,000 predictions.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class EconomicsConfig(BaseModel):
    """Cost metadata of one model. A model without it is vetoed (governance)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field("accuracy", description="The metric whose points carry business value.")
    higher_is_better: bool = Field(True, description="False for error metrics such as MAE.")
    value_per_point: float = Field(
        ..., ge=0, description="Money one metric point (0.01) is worth per 1,000 predictions."
    )
    traffic_per_day: float = Field(..., ge=0, description="Predictions served per day.")
    currency: str = "USD"
    infrastructure: str = Field("cpu-small", description="Infrastructure type the trainer runs on.")
    compute_rate_per_hour: float = Field(..., ge=0, description="Money per hour of training compute.")
    default_training_hours: float = Field(
        0.5, gt=0, description="Training duration assumed while the model has no past training runs."
    )
    labeling_cost_per_row: float = Field(0.0, ge=0, description="Money to label one new row.")
    labels_per_retrain: int = Field(0, ge=0, description="New labels a retrain needs.")
    fixed_overhead: float = Field(0.0, ge=0, description="Review and deploy overhead per retrain.")
    serving_cost_per_day: float = Field(0.0, ge=0, description="Running cost: serving, storage, monitoring.")
    revenue_per_day: float | None = Field(
        None, ge=0, description="Value the model earns per day, for total-cost-of-ownership checks."
    )


@dataclass(frozen=True)
class CostEstimate:
    """The estimated cost of one retrain, with an interval."""

    expected: float
    low: float
    high: float
    compute: float
    labeling: float
    overhead: float
    training_hours: float
    from_history: bool


def retrain_cost(economics: EconomicsConfig, past_training_hours: Sequence[float] = ()) -> CostEstimate:
    """Estimate a retrain's cost from past training durations, or the config when there are none.

    >>> e = EconomicsConfig(value_per_point=1, traffic_per_day=1000, compute_rate_per_hour=4,
    ...                     labeling_cost_per_row=0.1, labels_per_retrain=100, fixed_overhead=50)
    >>> retrain_cost(e).expected
    62.0
    >>> c = retrain_cost(e, [1.0, 2.0, 3.0])
    >>> (c.expected, round(c.low, 2), round(c.high, 2))
    (68.0, 64.0, 76.0)
    """
    labeling = economics.labeling_cost_per_row * economics.labels_per_retrain
    overhead = economics.fixed_overhead
    rate = economics.compute_rate_per_hour
    hours = [h for h in past_training_hours if h >= 0 and math.isfinite(h)]
    if hours:
        mean = sum(hours) / len(hours)
        if len(hours) > 1:
            spread = 2.0 * _std(hours)
            lo_h, hi_h = max(min(hours), mean - spread), max(max(hours), mean + spread)
        else:
            # one run says little about the spread: +-50 %
            lo_h, hi_h = 0.5 * mean, 1.5 * mean
        from_history = True
    else:
        mean = economics.default_training_hours
        lo_h, hi_h = 0.5 * mean, 2.0 * mean
        from_history = False
    fixed = labeling + overhead
    return CostEstimate(
        expected=mean * rate + fixed,
        low=lo_h * rate + fixed,
        high=hi_h * rate + fixed,
        compute=mean * rate,
        labeling=labeling,
        overhead=overhead,
        training_hours=mean,
        from_history=from_history,
    )


def loss_per_day(economics: EconomicsConfig, drop_points: float) -> float:
    """Money lost per day by a drop of ``drop_points`` metric points (never negative).

    >>> loss_per_day(EconomicsConfig(value_per_point=2, traffic_per_day=50_000,
    ...                              compute_rate_per_hour=1), 3.0)
    300.0
    """
    return max(drop_points, 0.0) * economics.value_per_point * economics.traffic_per_day / 1000.0


def _std(values: Sequence[float]) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def recovery_probability(outcomes: Sequence[bool], prior: float = 0.8, strength: float = 2.0) -> float:
    """The chance the next retrain recovers the metric: the mean of a Beta posterior.

    The prior is a Beta with mean ``prior`` worth ``strength`` retrains, so a model without
    history gets ``prior`` and a long history dominates it.

    >>> recovery_probability([])
    0.8
    >>> round(recovery_probability([False, False, True]), 3)
    0.52
    """
    if not 0.0 <= prior <= 1.0:
        raise ValueError(f"prior must be a probability in [0, 1], got {prior}")
    if strength <= 0:
        raise ValueError(f"strength must be positive, got {strength}")
    wins = sum(1 for o in outcomes if o)
    return (prior * strength + wins) / (strength + len(outcomes))


def decay_rate(histories: Sequence[Sequence[float]], max_age: int = 8) -> float | None:
    """How fast fresh models lose metric points per period, pooled over the model's past versions.

    Each history is one version's drop (points, positive = worse) per period since it started
    serving. The slope is fitted within each history (so versions at different levels do not
    fake a trend) over its first ``max_age`` periods (the decay a fresh model shows, not a later
    break in the data), pooled, and never negative. ``None`` until there are three points in one
    history.

    >>> decay_rate([[1.0, 2.0, 3.0, 4.0], [0.5, 1.5, 2.5]])
    1.0
    >>> decay_rate([[2.0, 2.0]]) is None
    True
    """
    sxy = sxx = 0.0
    for history in histories:
        ys = [float(v) for v in history[:max_age]]
        if len(ys) < 3:
            continue
        mean_x, mean_y = (len(ys) - 1) / 2.0, sum(ys) / len(ys)
        sxy += sum((i - mean_x) * (y - mean_y) for i, y in enumerate(ys))
        sxx += sum((i - mean_x) ** 2 for i in range(len(ys)))
    if sxx == 0:
        return None
    return max(sxy / sxx, 0.0)


def change_point(
    drops: Sequence[float], noise: float, decay: float = 0.0, z: float = 4.0, *, falls: bool = False
) -> int | None:
    """Index of the latest abrupt jump in a version's drop series, or ``None``.

    A jump is a rise between consecutive periods larger than the usual decay plus ``z`` standard
    deviations of the difference of two periods (``noise`` is one period's standard deviation, in
    points). A gradual decay has no jump, so its training windows count as fresh. With ``falls``, a
    fall as far below the usual decay counts too: the data changed back toward what the version
    learned (a recurring concept), which is as much a change as the rise that left it.

    >>> change_point([0.1, -0.2, 0.3, 9.0, 9.4], noise=0.5)
    3
    >>> change_point([0.0, 1.0, 2.0, 3.0], noise=0.5, decay=1.0) is None
    True
    >>> change_point([0.0, 9.0, 9.4, 0.2], noise=0.5), change_point([0.0, 9.0, 9.4, 0.2], noise=0.5, falls=True)
    (1, 3)
    """
    spread = z * noise * math.sqrt(2.0)
    for i in range(len(drops) - 1, 0, -1):
        step = drops[i] - drops[i - 1] - decay
        if step > spread or (falls and -step > spread):
            return i
    return None


def regime_days(changes: Sequence[float], now: float, since: float = 0.0) -> float | None:
    """Expected days until the next change in the data, from the spacing of past changes.

    Changes are taken as a Poisson process: the estimate is the mean gap, with the current
    regime's age counted as a gap that has not ended yet (the censored maximum-likelihood
    estimate). ``since`` is when the history starts. ``None`` before the first change.

    >>> regime_days([20.0], now=24.0)
    24.0
    >>> regime_days([12.0, 24.0], now=27.0)
    13.5
    """
    past = sorted(c for c in changes if since < c <= now)
    if not past:
        return None
    return (now - since) / len(past)


def regime_remaining(changes: Sequence[float], now: float) -> tuple[float, ...]:
    """How much longer each past regime that lasted at least the current one's age went on.

    A regime is the stretch between two consecutive changes (the first change closes no regime: its
    start was not seen). Each regime at least as long as the current one's age so far (``now`` minus
    the last change) says the current regime has that much less than its length left: read together,
    what the regimes seen say about the current one at its age, not only their mean. A regime exactly
    as long as that age leaves nothing: the current one, just as long so far, may end now (a retrain
    now would learn a regime that is over), so it counts as 0 days left, not as outlasted. Empty
    before two changes or when the current regime has outlasted every regime seen: then they say
    nothing about it.

    >>> regime_remaining([10.0, 20.0], now=24.0)
    (6.0,)
    >>> regime_remaining([12.0, 24.0, 30.0], now=34.0)
    (8.0, 2.0)
    >>> regime_remaining([10.0, 20.0], now=30.0), regime_remaining([10.0, 20.0], now=31.0)
    ((0.0,), ())
    """
    past = sorted(c for c in changes if c <= now)
    if not past:
        return ()
    age = now - past[-1]
    return tuple(b - a - age for a, b in itertools.pairwise(past) if b - a >= age)


def precision_weighted(measured: float, measured_var: float, forecast: float, forecast_var: float) -> float:
    """A measured level and a forecast of it, each weighed by its precision (one over its variance).

    The posterior mean of a normal level with the forecast as prior: a noisy measurement leans on the
    forecast, a sharp one overrides it. A variance of zero (or less) makes that side certain.

    >>> precision_weighted(4.0, 1.0, 2.0, 1.0), precision_weighted(4.0, 1.0, 2.0, 3.0)
    (3.0, 3.5)
    """
    if measured_var <= 0:
        return measured
    if forecast_var <= 0:
        return forecast
    w = forecast_var / (measured_var + forecast_var)
    return w * measured + (1.0 - w) * forecast


def running_cost_per_day(economics: EconomicsConfig) -> float:
    """What keeping the model in production costs per day (serving, storage, monitoring)."""
    return economics.serving_cost_per_day


def net_value_per_day(economics: EconomicsConfig) -> float | None:
    """Value earned minus running cost per day; ``None`` when the config states no value.

    >>> net_value_per_day(EconomicsConfig(value_per_point=1, traffic_per_day=1, compute_rate_per_hour=1,
    ...                                   serving_cost_per_day=30, revenue_per_day=100))
    70.0
    """
    if economics.revenue_per_day is None:
        return None
    return economics.revenue_per_day - running_cost_per_day(economics)


def build_economics(
    economics: EconomicsConfig,
    past_training_hours: Sequence[float] = (),
    past_recoveries: Sequence[bool] = (),
    prior: float = 0.8,
    strength: float = 2.0,
) -> tuple[CostEstimate, float]:
    """The cost estimate and recovery probability from the store's facts about one model.

    ``past_training_hours`` are the durations of the model's past training runs (MLflow),
    ``past_recoveries`` whether each past retrain recovered the metric, oldest first.

    >>> e = EconomicsConfig(value_per_point=1, traffic_per_day=1000, compute_rate_per_hour=10)
    >>> cost, p = build_economics(e, [2.0, 2.0], [True, False])
    >>> cost.expected, round(p, 2)
    (20.0, 0.65)
    """
    return retrain_cost(economics, past_training_hours), recovery_probability(past_recoveries, prior, strength)


def governance_violations(
    owner: str | None,
    business_purpose: str | None,
    economics: EconomicsConfig | None,
    *,
    team: str | None = None,
    require_team: bool = False,
    monthly_spend: float | None = None,
    monthly_budget: float | None = None,
    months_cost_over_value: int = 0,
    kill_periods: int | None = None,
) -> list[str]:
    """Every governance rule a watched model breaks, one sentence each (empty = compliant).

    The rules: a named owner, a stated business purpose, cost metadata (cost transparency before
    anything runs), a team when the platform requires one, spend within the monthly budget, and not
    costing more than it earns for ``kill_periods`` months.

    >>> governance_violations("ana", "churn offers", None)
    ['no cost metadata: add an economics section (value per point, traffic, compute rate)']
    >>> governance_violations(" ", None, None, monthly_spend=120.0, monthly_budget=100.0)[0]
    'no owner: set owner in the model config or the registered-model tag'
    """
    out: list[str] = []
    if not (owner or "").strip():
        out.append("no owner: set owner in the model config or the registered-model tag")
    if not (business_purpose or "").strip():
        out.append("no business purpose: set business_purpose in the model config or the registered-model tag")
    if economics is None:
        out.append("no cost metadata: add an economics section (value per point, traffic, compute rate)")
    if require_team and not (team or "").strip():
        out.append("no team: set team in the model config (team budgets need it)")
    if monthly_spend is not None and monthly_budget is not None and monthly_spend > monthly_budget:
        out.append(f"over budget: spent {monthly_spend:,.2f} this month against a budget of {monthly_budget:,.2f}")
    if kill_periods is not None and months_cost_over_value >= kill_periods:
        out.append(
            f"costs more than it earns for {months_cost_over_value} months (limit {kill_periods}): consider retiring it"
        )
    return out
