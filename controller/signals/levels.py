"""From a model's readings to the performance side of its signals: the fresh level a retrain would
reach, the serving version's level now, how fast fresh versions decay, and when the data changed.

The one place both the service's check and the backtest's replay get these numbers (DESIGN.md:
no second copy of the signal pipeline). Pure: everything comes in as arguments, nothing is read
from a clock, a store or a file.

**Readings.** Every check measures the serving version once: its metric on the labelled rows it
served that arrived since the previous reading (``source="realized"``), or, before any has, a
label-free estimate. A check stores its reading with the check, so the history of readings is the
model's check history. Work is in *badness points*: 100 x the metric, signed so that up is worse
(a point is 0.01 of the metric); time is in check *periods* (one reading per period).

**The rules** (docs/controller.md, "Signals"):

- *Fresh level* (the baseline): what a freshly trained version achieves, the median over versions
  trained on a clean window (no change in the data inside it) of their level at age 0: the serving
  version's first reading, and for a replaced version the mean of its first readings (up to
  ``pool``, before any later change) with the decay taken out.
- *Decay*: the pooled within-version slope of the readings of every version over its first periods
  before a change (:func:`controller.core.forecasts.decay_rate`).
- *Changes*: a jump (up or down) in the serving version's series beyond the decay and ``z_jump``
  standard errors (:func:`controller.core.forecasts.change_point`), dated at the reading where it
  shows; and a clean version whose first reading stands off the other fresh levels as far started
  just after a change (dated at its start, and its first reading is no fresh level).
- *Level now*: the serving version's last readings since it started or the data last changed (up
  to ``pool``), each carried forward by the decay to the period just served; for a clean version
  with no change since it started, weighed by precision against the decay line from the fresh
  level (once three fresh levels are known). Its interval: ``z`` standard errors of the
  difference between the level and the fresh level.
- *Before the version's first label*: the level it is expected to start at (the fresh level plus
  what a stale training window left of the drop) moved by the label-free estimate's change since
  the version's reference; with no fresh level at all, the estimate against its own view of the
  reference.
- *When labels stall* (this check read no new labelled row but earlier checks did): the level from
  those readings moved by the estimate's change since the newest of them (the estimate of that
  reading's rows is kept with it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np

from controller.core.decision import Signals
from controller.core.forecasts import change_point, decay_rate, precision_weighted, regime_days, regime_remaining


class Reading(Protocol):
    """What a stored check says about the serving version (the store's ``CheckPoint`` is one)."""

    @property
    def version(self) -> str | None: ...
    @property
    def source(self) -> str | None: ...
    @property
    def metric_value(self) -> float | None: ...
    @property
    def metric_se(self) -> float | None: ...
    @property
    def rows_from(self) -> datetime | None: ...
    @property
    def change_at(self) -> str | None: ...
    @property
    def metric_estimate(self) -> float | None: ...


@dataclass(frozen=True)
class Measured:
    """This check's realized reading of the serving version: its rows that were not read before."""

    value: float
    se: float
    """Standard error of ``value`` (metric units)."""
    n: int
    rows_from: datetime
    """The oldest row behind it: the reading stands for the period that starts here."""


@dataclass(frozen=True)
class Estimated:
    """This check's label-free estimate of the serving version, with its interval, and the same
    estimator's view of the version's reference (what it would say of the data it was trained on)."""

    value: float
    lower: float
    upper: float
    reference: float


@dataclass(frozen=True)
class VersionFacts:
    """What is known of one version besides its readings."""

    version: str
    started_at: datetime
    """When it started serving: rows before this are not its to answer for."""
    clean: bool = True
    """Trained on a window with no change in the data inside it."""
    residual_points: float = 0.0
    """The part of the drop its stale training window was expected to leave (badness points)."""


@dataclass(frozen=True)
class Timing:
    """The model's clock, in days."""

    period_days: float
    """One check period: the span one reading stands for."""
    label_delay_days: float = 0.0
    train_window_days: float = 7.0
    """The labelled part of a retrain's training window."""


@dataclass(frozen=True)
class Assessment:
    """The performance side of one check's signals (metric units unless named otherwise)."""

    source: str
    baseline: float | None
    current: float | None
    current_low: float | None = None
    current_high: float | None = None
    decay_points_per_day: float | None = None
    changes: tuple[datetime, ...] = ()
    """Changes this check dated (to store with it)."""
    window_fresh_share: float | None = None
    fresh_window_in_days: float | None = None
    regime_days: float | None = None
    regime_remaining: tuple[float, ...] = ()
    fresh_levels: int = 0
    pooled: int = 0

    def signals(self, metric: str, **measured: Any) -> Signals:
        """The decision's :class:`Signals`: this assessment plus what the check measured besides
        performance (drift share and verdict, quality failures, rows, a reuse candidate)."""
        return Signals(
            metric,
            self.baseline,
            self.current,
            self.source,
            self.current_low,
            self.current_high,
            decay_points_per_day=self.decay_points_per_day,
            window_fresh_share=self.window_fresh_share,
            fresh_window_in_days=self.fresh_window_in_days,
            regime_days=self.regime_days,
            regime_remaining=self.regime_remaining,
            **measured,
        )


def parse_changes(text: str | None) -> list[datetime]:
    """The changes a stored check dated (comma-separated ISO times)."""
    if not text:
        return []
    return [datetime.fromisoformat(part) for part in text.split(",") if part]


def format_changes(changes: Sequence[datetime]) -> str | None:
    """Changes as stored with a check: comma-separated ISO times, or None.

    >>> from datetime import UTC
    >>> format_changes([datetime(2026, 1, 2, tzinfo=UTC)])
    '2026-01-02T00:00:00+00:00'
    """
    return ",".join(c.isoformat() for c in sorted(set(changes))) or None


@dataclass(frozen=True)
class _Point:
    at: datetime
    age: float  # periods since the version started
    bad: float  # badness points
    se: float  # standard error, points


def assess(
    *,
    higher_is_better: bool,
    now: datetime,
    serving: VersionFacts,
    versions: Mapping[str, VersionFacts],
    history: Sequence[Reading],
    measured: Measured | None,
    estimated: Estimated | None,
    timing: Timing,
    registered_baseline: float | None = None,
    pool: int = 8,
    z: float = 3.0,
) -> Assessment:
    """The performance signals of one check (see the module docstring).

    ``history`` holds the model's past checks, oldest first; ``versions`` the facts of every version
    in it (a version missing there starts at its first reading, clean); ``registered_baseline`` is
    the serving version's own baseline metric, used only while no fresh level is known.
    """
    sign = -1.0 if higher_is_better else 1.0
    period = timedelta(days=timing.period_days)
    facts = dict(versions)
    facts.setdefault(serving.version, serving)

    def to_bad(value: float) -> float:
        return sign * 100.0 * value

    def to_metric(bad: float) -> float:
        return sign * bad / 100.0

    series: dict[str, list[_Point]] = {}
    known: set[datetime] = set()
    for r in history:
        known.update(parse_changes(r.change_at))
        if r.source != "realized" or r.metric_value is None or r.version is None or r.rows_from is None:
            continue
        f = facts.get(r.version)
        if f is None:
            f = facts[r.version] = VersionFacts(r.version, r.rows_from)
        series.setdefault(r.version, []).append(
            _Point(
                r.rows_from,
                (r.rows_from - f.started_at) / period,
                to_bad(r.metric_value),
                100.0 * (r.metric_se or 0.0),
            )
        )
    if measured is not None:
        series.setdefault(serving.version, []).append(
            _Point(
                measured.rows_from,
                (measured.rows_from - serving.started_at) / period,
                to_bad(measured.value),
                100.0 * measured.se,
            )
        )
    order = sorted(series, key=lambda v: (facts[v].started_at, v))
    if serving.version in order:  # the serving version is the newest, whatever its recorded start
        order.remove(serving.version)
        order.append(serving.version)

    def before_break(v: str, changes: set[datetime]) -> list[_Point]:
        later = [c for c in changes if c > facts[v].started_at]
        end = min(later) if later else None
        return [p for p in series[v] if end is None or p.at < end]

    def decay_of(changes: set[datetime]) -> float:
        kept = [before_break(v, changes) for v in order]
        return decay_rate([[p.bad for p in h] for h in kept], ages=[[p.age for p in h] for h in kept]) or 0.0

    def clean(v: str) -> bool:
        return facts[v].clean and facts[v].started_at not in known

    decay = decay_of(known)  # what the checks before this one had learned
    fresh: list[list[_Point]] = []
    for v in order:
        if not clean(v) or not series[v]:
            continue
        pts = series[v][:1] if v == serving.version else before_break(v, known)[:pool]
        if pts:
            fresh.append(pts)
    current = series.get(serving.version, [])
    serving_clean = clean(serving.version)
    own = fresh.pop() if fresh and current and fresh[-1][0] is current[0] else None
    levels = [float(np.mean([p.bad - decay * p.age for p in h])) for h in fresh]
    # the version's own holdout baseline is what it achieved fresh, when its window was clean
    registered = to_bad(registered_baseline) if registered_baseline is not None and serving.clean else None
    refs = [*levels, *([registered] if registered is not None else [])]
    new: set[datetime] = set()
    if own is not None and refs:
        jump = own[0].bad - float(np.median(refs))
        if change_point([0.0, jump], own[0].se, decay) == 1:
            # fitted on a clean window just before a change: the jump is between versions (or from
            # its holdout), where the version's own series cannot show it; its first reading is no
            # fresh level
            new.add(serving.started_at)
            serving_clean = False
            own = None
    if own is not None:
        fresh.append(own)
    levels = [*refs, *([own[0].bad] if own is not None else [])]
    baseline = float(np.median(levels)) if levels else None
    if baseline is not None and len(current) >= 2:
        # the noisier end of the series sets the bar, so a high level does not fake jumps; a fall
        # counts too: the data came back to what the version learned
        worst = max(current, key=lambda p: p.bad)
        steps = [b.age - a.age for a, b in itertools.pairwise(current)]
        at = change_point([p.bad - baseline for p in current], worst.se, decay, falls=True, steps=steps)
        if at is not None:
            new.add(current[at].at)
    changes = known | new
    change = max(changes, default=None)
    decay = decay_of(changes)
    out = replace(
        _context(timing, now, changes, change, [f.started_at for f in facts.values()], decay),
        changes=tuple(sorted(new)),
        fresh_levels=len(levels),
    )
    if not current:
        residual = serving.residual_points
        return _estimated_view(out, estimated, baseline, residual, to_bad, to_metric)
    if baseline is None:
        return out
    since = change if change is not None and change > serving.started_at else None
    recent = [p for p in current if since is None or p.at >= since][-pool:] or current[-1:]
    target_age = (now - period - serving.started_at) / period
    level = float(np.mean([p.bad + decay * (target_age - p.age) for p in recent]))
    var_level = float(np.mean([p.se**2 for p in recent])) / len(recent)
    pooled_fresh = [p for h in fresh for p in h]
    var_fresh = float(np.mean([p.se**2 for p in pooled_fresh])) / len(pooled_fresh) if pooled_fresh else var_level
    if serving_clean and since is None and len(levels) >= 3:
        # a version fitted on a clean window is expected on the line of the learned decay from the
        # fresh level; past versions' fresh levels show how far one strays from it
        forecast = baseline + decay * target_age
        level = precision_weighted(level, var_level, forecast, float(np.var(levels, ddof=1)))
    half = z * math.sqrt(var_level + var_fresh)
    then = next((r.metric_estimate for r in reversed(history) if _realized_of(r, serving.version)), None)
    if measured is None and estimated is not None and then is not None:
        # labels stalled: the readings' level, moved as far as the estimate moved since the newest of them
        shift = [to_bad(v) - to_bad(then) for v in (estimated.value, estimated.lower, estimated.upper)]
        spread = max(abs(shift[1] - shift[0]), abs(shift[2] - shift[0]))
        half = math.sqrt(half**2 + spread**2)
        level += shift[0]
        lo, hi = sorted((to_metric(level - half), to_metric(level + half)))
        return replace(
            out, source="estimated", baseline=to_metric(baseline), current=to_metric(level),
            current_low=lo, current_high=hi, pooled=len(recent),
        )  # fmt: skip
    lo, hi = sorted((to_metric(level - half), to_metric(level + half)))
    return replace(
        out,
        source="realized",
        baseline=to_metric(baseline),
        current=to_metric(level),
        current_low=lo,
        current_high=hi,
        pooled=len(recent),
    )


def _realized_of(r: Reading, version: str) -> bool:
    return r.version == version and r.source == "realized" and r.metric_value is not None


def _context(
    timing: Timing,
    now: datetime,
    changes: set[datetime],
    change: datetime | None,
    starts: Sequence[datetime],
    decay: float,
) -> Assessment:
    """An assessment with no performance figure yet: decay per day, the training window's freshness
    and the regime forecast."""
    day = timedelta(days=1)
    out = Assessment("none", None, None, decay_points_per_day=decay / timing.period_days)
    if change is None:
        return out
    stop = now - timedelta(days=timing.label_delay_days)
    window = timing.train_window_days
    origin = min(starts)
    days = sorted((c - origin) / day for c in changes)
    return replace(
        out,
        window_fresh_share=min(max((stop - change) / day / window, 0.0), 1.0),
        fresh_window_in_days=max((change - stop) / day + window, 0.0),
        regime_days=regime_days(days, (now - origin) / day, 0.0),
        regime_remaining=regime_remaining(days, (now - origin) / day),
    )


def _estimated_view(
    out: Assessment,
    estimated: Estimated | None,
    baseline: float | None,
    residual: float,
    to_bad: Callable[[float], float],
    to_metric: Callable[[float], float],
) -> Assessment:
    """No realized reading of the serving version yet: where it is expected to start, moved by the estimate."""
    if estimated is None:
        return replace(out, baseline=None if baseline is None else to_metric(baseline))
    ref = to_bad(estimated.reference)
    if baseline is None:
        # nothing measured yet: the estimate against its own view of the reference
        start, base = ref, ref
    else:
        start, base = baseline + residual, baseline
    shift = [to_bad(v) - ref for v in (estimated.value, estimated.lower, estimated.upper)]
    low, high = sorted(to_metric(start + s) for s in shift[1:])
    return replace(
        out,
        source="estimated",
        baseline=to_metric(base),
        current=to_metric(start + shift[0]),
        current_low=low,
        current_high=high,
    )
