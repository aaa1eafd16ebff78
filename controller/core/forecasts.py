"""Forecasts from a model's history: how fast fresh versions decay, when the data changed,
how long its regimes last. Pure functions of numbers; the signals layer feeds them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence


def decay_rate(
    histories: Sequence[Sequence[float]], max_age: int = 8, ages: Sequence[Sequence[float]] | None = None
) -> float | None:
    """How fast fresh models lose metric points per period, pooled over the model's past versions.

    Each history is one version's drop (points, positive = worse) per period since it started
    serving; ``ages`` (same shape) says when each reading was taken, in periods since the version
    started (default: 0, 1, 2, ...: one reading per period). The slope is fitted within each history
    (so versions at different levels do not fake a trend) over its first ``max_age`` readings (the
    decay a fresh model shows, not a later break in the data), pooled, and never negative. ``None``
    until there are three points in one history.

    >>> decay_rate([[1.0, 2.0, 3.0, 4.0], [0.5, 1.5, 2.5]])
    1.0
    >>> decay_rate([[2.0, 2.0]]) is None
    True
    >>> decay_rate([[0.0, 2.0, 4.0]], ages=[[0.0, 2.0, 4.0]])
    1.0
    """
    sxy = sxx = 0.0
    for j, history in enumerate(histories):
        ys = [float(v) for v in history[:max_age]]
        if len(ys) < 3:
            continue
        xs = [float(a) for a in ages[j][: len(ys)]] if ages is not None else [float(i) for i in range(len(ys))]
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        sxy += sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
        sxx += sum((x - mean_x) ** 2 for x in xs)
    if sxx == 0:
        return None
    return max(sxy / sxx, 0.0)


def change_point(
    drops: Sequence[float],
    noise: float,
    decay: float = 0.0,
    z: float = 4.0,
    *,
    falls: bool = False,
    steps: Sequence[float] | None = None,
) -> int | None:
    """Index of the latest abrupt jump in a version's drop series, or ``None``.

    A jump is a rise between consecutive periods larger than the usual decay plus ``z`` standard
    deviations of the difference of two periods (``noise`` is one period's standard deviation, in
    points). A gradual decay has no jump, so its training windows count as fresh. With ``falls``, a
    fall as far below the usual decay counts too: the data changed back toward what the version
    learned (a recurring concept), which is as much a change as the rise that left it. ``steps[i]``
    is how many periods lie between readings ``i`` and ``i + 1`` (default 1 each): the decay
    expected between them grows with it.

    >>> change_point([0.1, -0.2, 0.3, 9.0, 9.4], noise=0.5)
    3
    >>> change_point([0.0, 1.0, 2.0, 3.0], noise=0.5, decay=1.0) is None
    True
    >>> change_point([0.0, 9.0, 9.4, 0.2], noise=0.5), change_point([0.0, 9.0, 9.4, 0.2], noise=0.5, falls=True)
    (1, 3)
    """
    spread = z * noise * math.sqrt(2.0)
    for i in range(len(drops) - 1, 0, -1):
        step = drops[i] - drops[i - 1] - decay * (1.0 if steps is None else steps[i - 1])
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
