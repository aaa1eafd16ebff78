"""Spend anomalies in a daily cost series: spikes and the first days of level shifts, learned per series.

Cost is multiplicative (a service twice as busy costs twice as much, at any scale), so the detector
works on ``log(cost + min_cost)``: weekly seasonality and trend become additive, the noise of a
$5 and a $5,000 series look alike, and ``min_cost`` is the floor under which spend is too small to
matter (a day from $0.02 to $0.20 moves the log little).

For each day, from the days before it only (no hindsight), over a trailing window:

- **trend**: the median week-over-week difference, divided by 7 (a weekly pattern cancels out of it,
  and a spike moves a median little);
- **weekly seasonality**: each weekday's median offset from the detrended series;
- **level**: the median of the last 14 deseasonalized, detrended days;
- **scale**: 1.4826 x the median absolute residual (the noise's standard deviation when it is
  normal), never under ``min_scale``.

A day scores ``(log cost - expected) / scale``; it is an **anomaly** when the score passes
``sensitivity`` and the cost exceeds the expectation by more than ``min_cost``. One sensitivity
serves every series: each series' own noise sets its scale, no threshold is set per series.

An anomalous day is then kept out of the baseline (a spike must not teach the detector that spikes
are normal). When the next day stays up at about the same level, the series has moved: the first
day was the start of a **level shift**. The history is re-based to the new level (the jump is added
to every earlier day, so seasonality, trend and scale carry over) and the following days are normal,
not one alarm a day. A fall is treated the same way for the baseline but is never reported: a
correction, a credit or a scale-down is not overspend.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> x = 100.0 * np.exp(rng.normal(0.0, 0.05, 60))
>>> x[40] *= 3.0           # a spike
>>> x[50:] *= 2.0          # a level shift
>>> [(d.day, d.state) for d in SpendDetector().run(x) if d.state in ("anomaly", "new_level")]
[(40, 'anomaly'), (50, 'anomaly'), (51, 'new_level')]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["SpendDay", "SpendDetector"]


@dataclass(frozen=True)
class SpendDay:
    """The detector's view of one day."""

    day: int
    """Index of the day in the series."""
    cost: float
    expected: float | None
    """The cost the day's past predicted; None while the series is too short to tell."""
    score: float
    """(log cost - expected log cost) / scale; 0 while warming up."""
    state: str
    """``warmup``, ``normal``, ``anomaly`` (reported), ``new_level`` (the day after an anomaly that
    stayed: the anomaly was the start of a level shift; not reported again), ``low`` (far under the
    expectation: never reported) or ``excluded`` (a flagged day that is kept out of the baseline)."""

    @property
    def anomaly(self) -> bool:
        return self.state == "anomaly"


class SpendDetector:
    """Online spike and level-shift detector for one daily cost series (see the module docstring).

    ``sensitivity``: the score (robust standard deviations of the series' own noise, in log space)
    a day must pass; ``min_cost``: the money per day under which nothing is reported (and the offset
    of the log); ``window``: days of history the seasonality, trend and scale are read from;
    ``min_history``: days a series needs before it is judged.
    """

    def __init__(
        self,
        sensitivity: float = 4.0,
        min_cost: float = 1.0,
        window: int = 56,
        min_history: int = 14,
        min_scale: float = 0.02,
    ) -> None:
        if sensitivity <= 0:
            raise ValueError(f"sensitivity must be positive, got {sensitivity}")
        if min_cost <= 0:
            raise ValueError(f"min_cost must be positive, got {min_cost}")
        if window < 14 or min_history < 7:
            raise ValueError("window must be at least 14 days and min_history at least 7")
        self.sensitivity = sensitivity
        self.min_cost = min_cost
        self.window = window
        self.min_history = min_history
        self.min_scale = min_scale

    def run(self, costs: Sequence[float] | np.ndarray, weekday0: int = 0) -> list[SpendDay]:
        """Every day of ``costs`` (oldest first), each judged from the days before it.

        ``weekday0``: the weekday of the first day (0 = Monday), so weekly seasonality lines up
        across series that start on different days.
        """
        x = np.asarray(costs, dtype=np.float64)
        y = np.log(np.maximum(x, 0.0) + self.min_cost)
        base = y.copy()  # the history as the detector uses it: re-based at level shifts
        usable = np.ones(len(x), dtype=bool)
        dow = (np.arange(len(x)) + weekday0) % 7
        out: list[SpendDay] = []
        errors = np.full(len(x), np.nan)  # each day's one-step prediction error (log)
        pending: tuple[int, float] | None = None  # a flagged day and its deseasonalized log level
        for t in range(len(x)):
            fit = self._fit(base, usable, dow, t)
            if fit is None:
                out.append(SpendDay(t, float(x[t]), None, 0.0, "warmup"))
                continue
            level, season, slope, in_sample = fit
            expected_log = level + season[dow[t]]
            errors[t] = y[t] - expected_log
            scale = self._scale(errors, usable, t, in_sample)
            z = (y[t] - expected_log) / scale
            expected = float(np.exp(expected_log) - self.min_cost)
            deseason = y[t] - season[dow[t]]
            if pending is not None:
                first, first_level = pending
                pending = None
                stayed = abs(deseason - (first_level + slope * (t - first))) < self.sensitivity * scale
                if stayed and abs(z) > self.sensitivity / 2.0:
                    # the flagged day began a new level: re-base the history before it to that level
                    jump = (first_level + slope * (t - first) + deseason) / 2.0 - level
                    base[:first] += jump
                    usable[first] = True
                    state = "new_level"
                    out.append(SpendDay(t, float(x[t]), expected, float(z), state))
                    continue
            if z > self.sensitivity and x[t] - expected > self.min_cost:
                state = "anomaly"
            elif z < -self.sensitivity:
                state = "low"
            else:
                state = "normal"
            if state != "normal":
                usable[t] = False
                pending = (t, float(deseason))
            out.append(SpendDay(t, float(x[t]), expected, float(z), state))
        return out

    def _scale(self, errors: np.ndarray, usable: np.ndarray, t: int, in_sample: float) -> float:
        """The spread of the series' past one-step prediction errors on usable days: what a forecast
        of this series actually misses by (the in-sample residuals understate it: the fit saw them).
        Until there are ``min_history`` of them, the in-sample scale x 1.5."""
        lo = max(0, t - self.window)
        past = errors[lo:t][usable[lo:t]]
        past = past[np.isfinite(past)]
        if len(past) < self.min_history:
            return max(1.5 * in_sample, self.min_scale)
        return max(1.4826 * float(np.median(np.abs(past - np.median(past)))), self.min_scale)

    def _fit(
        self, base: np.ndarray, usable: np.ndarray, dow: np.ndarray, t: int
    ) -> tuple[float, np.ndarray, float, float] | None:
        """Level at day ``t``, weekday offsets, slope per day and scale, from the usable days before ``t``."""
        lo = max(0, t - self.window)
        idx = np.flatnonzero(usable[lo:t]) + lo
        if len(idx) < self.min_history:
            return None
        vals = base[idx]
        # trend: week-over-week differences between usable days
        later = idx[idx - 7 >= lo]
        pairs = later[usable[later - 7]]
        slope = float(np.median(base[pairs] - base[pairs - 7]) / 7.0) if len(pairs) >= 7 else 0.0
        z = vals + slope * (t - idx)
        season = np.zeros(7)
        days = dow[idx]
        if len(idx) >= 21:
            center = float(np.median(z))
            for d in range(7):
                on = z[days == d]
                if len(on) >= 2:
                    season[d] = float(np.median(on)) - center
        flat = z - season[days]
        level = float(np.median(flat[-14:]))
        resid = flat - np.median(flat)
        scale = max(1.4826 * float(np.median(np.abs(resid))), self.min_scale)
        return level, season, slope, scale
