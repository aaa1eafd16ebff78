"""What decay costs and what a retrain costs, in money.

Units: money is in the model's ``currency``; a metric *point* is 0.01 of the metric (one
percentage point of accuracy, 0.01 of ROC AUC); traffic is predictions per day.

Loss per day of a drop of ``d`` points = ``d x value_per_point x traffic_per_day / 1000``:
``value_per_point`` is the money one metric point is worth per 1,000 predictions.
"""

from __future__ import annotations

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
    source: str = "config"
    """Where the compute part comes from: ``config`` (default hours x rate), ``runtime`` (past
    training hours x rate) or ``billed`` (past retrains' bills)."""


def retrain_cost(
    economics: EconomicsConfig, past_training_hours: Sequence[float] = (), past_billed: Sequence[float] = ()
) -> CostEstimate:
    """Estimate a retrain's cost from past bills, else past training durations, else the config.

    ``past_billed``: what billing charged for past retrains' resources (tagged with their MLflow
    run id), the compute part measured instead of priced: when there are any, they replace
    hours x rate. Labeling and overhead come from the config (they are not on a cloud bill).

    >>> e = EconomicsConfig(value_per_point=1, traffic_per_day=1000, compute_rate_per_hour=4,
    ...                     labeling_cost_per_row=0.1, labels_per_retrain=100, fixed_overhead=50)
    >>> retrain_cost(e).expected
    62.0
    >>> c = retrain_cost(e, [1.0, 2.0, 3.0])
    >>> (c.expected, round(c.low, 2), round(c.high, 2))
    (68.0, 64.0, 76.0)
    >>> b = retrain_cost(e, [1.0, 2.0, 3.0], past_billed=[30.0, 50.0])
    >>> (b.expected, b.source)
    (100.0, 'billed')
    """
    labeling = economics.labeling_cost_per_row * economics.labels_per_retrain
    overhead = economics.fixed_overhead
    fixed = labeling + overhead
    rate = economics.compute_rate_per_hour
    bills = [b for b in past_billed if math.isfinite(b)]
    if bills:
        mean, lo, hi = _spread(bills)
        return CostEstimate(mean + fixed, lo + fixed, hi + fixed, mean, labeling, overhead,
                            mean / rate if rate > 0 else 0.0, True, "billed")  # fmt: skip
    hours = [h for h in past_training_hours if h >= 0 and math.isfinite(h)]
    if hours:
        mean, lo_h, hi_h = _spread(hours)
        from_history = True
    else:
        mean = economics.default_training_hours
        lo_h, hi_h = 0.5 * mean, 2.0 * mean
        from_history = False
    return CostEstimate(
        expected=mean * rate + fixed,
        low=lo_h * rate + fixed,
        high=hi_h * rate + fixed,
        compute=mean * rate,
        labeling=labeling,
        overhead=overhead,
        training_hours=mean,
        from_history=from_history,
        source="runtime" if from_history else "config",
    )


def _spread(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and interval of past figures: two standard deviations, at least the observed range;
    one figure says little about the spread: +-50 %."""
    mean = sum(values) / len(values)
    if len(values) > 1:
        spread = 2.0 * _std(values)
        return mean, max(min(values), mean - spread), max(max(values), mean + spread)
    return mean, 0.5 * mean, 1.5 * mean


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
