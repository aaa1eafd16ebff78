"""The decay signal: how far a metric fell from its baseline, whether that is real, and where it is going.

One check yields one :class:`DecaySignal`, built from the current figure (realized when labels
have arrived, estimated otherwise) and the series of past checks:

- **drop**: baseline minus current in points (1 point = 0.01; positive = worse, whatever the
  metric's direction), and whether the interval of the current figure lies wholly on the bad side
  of the baseline (``significant``) with a one-sided p-value read off that interval;
- **change**: a one-sided CUSUM on the drop series (history, then the current value), so a slow
  slide that no single check calls significant is still noticed;
- **forecast**: a robust (Theil-Sen) trend of the drop over the recent checks and the number of
  periods until it reaches the policy's tolerance.

It also holds the bookkeeping that lets the controller learn how far to trust a source:
:func:`estimation_error` (estimate minus realized, once labels land) and :func:`trust_weight`.

>>> from detectors.estimation import MetricEstimate, two_sided_z
>>> sig = decay_signal("accuracy", 0.90, MetricEstimate(0.87, 0.86, 0.88), "estimated",
...                    history=[0.90, 0.895, 0.89, 0.885, 0.88, 0.875], tolerance_points=5.0)
>>> print(f"{sig.drop_points:.1f} {sig.significant} {sig.change_detected} {sig.forecast_periods_to_tolerance:.1f}")
3.0 True True 4.0
>>> sig.to_signal_fields()["source"]
'estimated'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import special

from detectors.estimation import MetricEstimate, two_sided_z
from detectors.performance import MetricValue

Source = Literal["realized", "estimated", "none"]


@dataclass(frozen=True)
class ChangeResult:
    """Outcome of the CUSUM on a drop series."""

    detected: bool
    index: int | None
    """Position (in the series) where the alarm fired; None without an alarm."""
    start: int | None
    """Position where the run that raised the alarm began: the estimated change point."""
    statistic: float
    threshold: float


@dataclass(frozen=True)
class DecaySignal:
    """What one check says about a metric's decay; ``to_signal_fields`` feeds the decision."""

    metric: str
    source: Source
    baseline: float
    current: float | None
    lower: float | None
    upper: float | None
    drop_points: float | None
    """Baseline minus current in points, signed so that positive is worse."""
    significant: bool
    p_value: float | None
    """One-sided p-value that the metric is no worse than baseline (from the interval's width)."""
    change_detected: bool
    change_index: int | None
    """Index in ``history + [current]`` where the detected slide began."""
    forecast_periods_to_tolerance: float | None
    """Checks until the drop reaches the tolerance on the current trend: 0 when already there,
    None when the trend is flat or improving or there is too little history."""
    forecast_hours_to_tolerance: float | None
    slope_points_per_period: float | None
    tolerance_points: float
    higher_is_better: bool

    def to_signal_fields(self) -> dict[str, Any]:
        """The fields of ``controller.decision.Signals`` this signal fills, by name."""
        return {
            "metric": self.metric,
            "baseline": self.baseline,
            "current": self.current,
            "source": self.source if self.current is not None else "none",
            "current_low": self.lower,
            "current_high": self.upper,
        }


def decay_signal(
    metric: str,
    baseline: float,
    current: MetricValue | MetricEstimate | None,
    source: Source,
    history: Sequence[float],
    tolerance_points: float,
    higher_is_better: bool = True,
    period_hours: float = 24.0,
    confidence: float = 0.9,
    trend_window: int = 8,
    cusum_slack_sd: float = 0.5,
    cusum_threshold_sd: float = 5.0,
) -> DecaySignal:
    """Build the decay signal of one check.

    ``history`` holds the metric's values at past checks, oldest first, without the current one.
    ``confidence`` is the level of the interval carried by ``current`` (used for the p-value).
    An insufficient or missing current value gives a signal with ``source="none"`` fields, so the
    controller defers for lack of evidence instead of acting on a number that is not there.
    """
    if source not in ("realized", "estimated", "none"):
        raise ValueError(f"source must be realized, estimated or none, got {source!r}")
    if tolerance_points < 0 or period_hours <= 0 or trend_window < 3:
        raise ValueError("tolerance_points must be >= 0, period_hours > 0 and trend_window >= 3")
    value, lower, upper = _unpack(current)
    sign = 1.0 if higher_is_better else -1.0
    past = [float(v) for v in history if v is not None and np.isfinite(v)]
    if value is None:
        return DecaySignal(
            metric, "none", baseline, None, None, None, None, False, None, False, None, None, None, None,
            tolerance_points, higher_is_better,
        )  # fmt: skip
    drop = 100.0 * sign * (baseline - value)
    bad_bound = upper if higher_is_better else lower
    significant = bad_bound is not None and sign * (baseline - bad_bound) > 0
    p_value = _p_value(baseline, value, lower, upper, confidence, higher_is_better)

    drops = np.array([100.0 * sign * (baseline - v) for v in [*past, value]])
    noise = _noise_points(drops, lower, upper, confidence)
    # Without a noise scale no drop can be called unusual, so there is no change to report.
    change = (
        cusum(drops, noise, cusum_slack_sd, cusum_threshold_sd)
        if noise is not None
        else ChangeResult(False, None, None, 0.0, float("inf"))
    )
    recent = drops[change.start :] if change.detected and change.start is not None else drops
    recent = recent[-trend_window:]
    slope = theil_sen_slope(recent) if len(recent) >= 3 else None
    periods: float | None
    if drop >= tolerance_points:
        periods = 0.0
    elif slope is not None and slope > 0:
        # Project from the trend line's current level, not the last (noisy) point.
        level = float(np.median(recent - slope * np.arange(len(recent)))) + slope * (len(recent) - 1)
        periods = max(0.0, (tolerance_points - level) / slope)
    else:
        periods = None
    return DecaySignal(
        metric=metric,
        source=source,
        baseline=baseline,
        current=value,
        lower=lower,
        upper=upper,
        drop_points=drop,
        significant=significant,
        p_value=p_value,
        change_detected=change.detected,
        change_index=change.start if change.detected else None,
        forecast_periods_to_tolerance=periods,
        forecast_hours_to_tolerance=None if periods is None else periods * period_hours,
        slope_points_per_period=slope,
        tolerance_points=tolerance_points,
        higher_is_better=higher_is_better,
    )


def theil_sen_slope(y: np.ndarray) -> float:
    """The Theil-Sen slope of ``y`` against 0, 1, 2, ...: the median of the slopes between every
    two points. ``scipy.stats.theilslopes(y)[0]``, computed the same way (the same pairs, the
    same division), without its intercept and interval, whose overhead cost a check 20 times the
    slope itself.

    >>> theil_sen_slope(np.array([1.0, 2.0, 4.0]))  # slopes 1, 1.5 and 2
    1.5
    """
    x = np.arange(len(y), dtype=np.float64)
    dx = x[:, np.newaxis] - x
    dy = y[:, np.newaxis] - y
    later = dx > 0
    return float(np.median(dy[later] / dx[later]))


def cusum(
    drops: Sequence[float] | np.ndarray, noise_sd: float, slack_sd: float = 0.5, threshold_sd: float = 5.0
) -> ChangeResult:
    """One-sided tabular CUSUM for an upward shift of the drop series away from zero.

    ``noise_sd`` is the check-to-check noise in points; the slack (``slack_sd`` x noise) ignores
    wobbles, the alarm fires when the running sum passes ``threshold_sd`` x noise.

    >>> cusum([0.1, -0.2, 0.0, 0.1, 1.5, 1.8, 2.0], noise_sd=0.3).detected
    True
    >>> cusum([0.1, -0.2, 0.0, 0.1, -0.1, 0.2, 0.0], noise_sd=0.3).detected
    False
    """
    sd = max(float(noise_sd), 1e-9)
    k, h = slack_sd * sd, threshold_sd * sd
    s, start = 0.0, 0
    for i, x in enumerate(drops):
        s_new = max(0.0, s + float(x) - k)
        if s == 0.0 and s_new > 0.0:
            start = i
        s = s_new
        if s > h:
            return ChangeResult(True, i, start, s, h)
    return ChangeResult(False, None, None, s, h)


def estimation_error(estimate: MetricEstimate, realized: MetricValue) -> float | None:
    """Estimate minus realized value of one metric on one window, once its labels have landed.

    None when either side has no number (an insufficient realized value is no ground truth).

    >>> estimation_error(MetricEstimate(0.91, 0.90, 0.92), MetricValue(0.90, 0.88, 0.92, 5000, "ok"))
    0.010000000000000009
    """
    if realized.value is None or realized.status != "ok" or not np.isfinite(estimate.estimate):
        return None
    return float(estimate.estimate - realized.value)


def trust_weight(past_abs_errors: Sequence[float], tolerance_points: float, prior_n: int = 3) -> float:
    """How far to trust a source (0..1) from its past absolute errors (metric units, 0.01 = 1 point).

    An error as large as the tolerance means the source cannot tell "fine" from "retrain": weight
    0. The weight falls linearly with the mean error in points over the tolerance, and ``prior_n``
    pseudo-errors of zero keep one early miss from silencing a source.

    >>> trust_weight([], 1.0)
    1.0
    >>> trust_weight([0.004, 0.006, 0.005, 0.005, 0.005], 1.0)
    0.6875
    >>> trust_weight([0.03] * 10, 1.0)
    0.0
    """
    errors = [abs(float(e)) for e in past_abs_errors if e is not None and np.isfinite(e)]
    if tolerance_points <= 0:
        return 1.0 if not errors or max(errors) == 0 else 0.0
    mean_points = 100.0 * sum(errors) / (len(errors) + prior_n)
    return float(min(1.0, max(0.0, 1.0 - mean_points / tolerance_points)))


def select_current(
    realized: MetricValue | None,
    estimated: MetricEstimate | None,
    *,
    past_abs_errors: Sequence[float] = (),
    tolerance_points: float = 1.0,
    min_trust: float = 0.25,
) -> tuple[MetricValue | MetricEstimate | None, Source, float]:
    """Pick the figure a check acts on: realized where labels allow, the estimate otherwise.

    Returns the figure, its source and the estimate's trust weight. An estimate is discounted by
    what it got wrong before: its interval is widened on both sides by the root mean square of
    its past errors (so a source that missed by 2 points cannot call a 1-point drop
    significant), and it is dropped (source ``none``) when its trust falls below ``min_trust``.

    >>> est = MetricEstimate(0.85, 0.84, 0.86)
    >>> cur, source, trust = select_current(None, est, past_abs_errors=[0.01, 0.01], tolerance_points=5.0)
    >>> print(source, round(trust, 2), round(cur.lower, 3), round(cur.upper, 3))
    estimated 0.92 0.83 0.87
    >>> select_current(MetricValue(0.8, 0.78, 0.82, 900, "ok"), est)[1]
    'realized'
    """
    trust = trust_weight(past_abs_errors, tolerance_points)
    if realized is not None and realized.status == "ok" and realized.value is not None:
        return realized, "realized", trust
    if estimated is None or not np.isfinite(estimated.estimate) or trust < min_trust:
        return None, "none", trust
    errors = [float(e) for e in past_abs_errors if e is not None and np.isfinite(e)]
    if errors:
        rms = float(np.sqrt(np.mean(np.square(errors))))
        estimated = MetricEstimate(
            estimated.estimate, estimated.lower - rms, estimated.upper + rms, estimated.n, estimated.std
        )
    return estimated, "estimated", trust


def _unpack(current: MetricValue | MetricEstimate | None) -> tuple[float | None, float | None, float | None]:
    if current is None:
        return None, None, None
    if isinstance(current, MetricValue):
        if current.status != "ok" or current.value is None:
            return None, None, None
        return current.value, current.lower, current.upper
    if not np.isfinite(current.estimate):
        return None, None, None
    lo = current.lower if np.isfinite(current.lower) else None
    hi = current.upper if np.isfinite(current.upper) else None
    return current.estimate, lo, hi


def _p_value(
    baseline: float, value: float, lower: float | None, upper: float | None, confidence: float, higher: bool
) -> float | None:
    if lower is None or upper is None or upper <= lower:
        return None
    sd = (upper - lower) / (2.0 * two_sided_z(confidence))
    z = (value - baseline) / sd if higher else (baseline - value) / sd
    return float(special.ndtr(z))


def _noise_points(drops: np.ndarray, lower: float | None, upper: float | None, confidence: float) -> float | None:
    """Check-to-check noise in points: the current interval's width, else the series' own scatter."""
    if lower is not None and upper is not None and upper > lower:
        return 100.0 * (upper - lower) / (2.0 * two_sided_z(confidence))
    if len(drops) >= 3:
        # MAD of successive differences: insensitive to the trend the detector is looking for.
        diffs = np.diff(drops)
        sd = float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / np.sqrt(2.0))
        return sd if sd > 0 else None
    return None
