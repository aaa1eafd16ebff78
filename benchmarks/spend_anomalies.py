"""Benchmark: the spend anomaly detector against the rules FinOps tools ship, on generated daily spend.

The series and their labels are fixed before any detector is run (``generate``): each of
``--series`` daily cost series (default 1,200, ``--days`` 140 days) has

- a level drawn log-uniform between 5 and 5,000 a day;
- weekly seasonality: a weekend dip to 40-100 % of the weekday level on 70 % of the series, and
  +-5 % per weekday on all;
- a trend of -0.2 % to +0.6 % a day (compounded);
- multiplicative lognormal noise with a sigma of 2 % to 12 %;
- in 70 % of the series, 1 to 3 one-day **spikes** of 1.5x to 3.5x the day's cost (true anomalies);
- in 30 %, one upward **level shift** of 1.4x to 2.5x that lasts to the end (a true anomaly on the
  day it starts only: every later day at the new level is normal);
- in 15 %, one downward level shift to 0.4x-0.7x (not an anomaly: spend fell);
- in 40 %, 1 or 2 **restated days**: a correction (credit or refund) that takes 30-100 % off a day,
  or usage restated into the next day (10-30 % of a day's cost moves to the following day). Neither
  is an anomaly;
- about 20 % of the series have no injected event of any kind.

Nothing is injected in the first 35 days (every method's history); the scored days are
35..days-1. A flag on a spike's day, or on a level shift's first or second day, finds that event
(one event counts once however many of its days are flagged); every other flag is a false alarm.
Precision = flags that found an event / all flags; recall = events found / events.

Every method sees, for day t, only the days before t (no hindsight): the detector is run day by
day through :meth:`detectors.spend.SpendDetector.run`, which keeps its own state, and the rules
use trailing windows.

The methods:
- ``detector``: :class:`detectors.spend.SpendDetector` at its default sensitivity;
- ``kubecost``: the day's cost above the trailing 7-day mean by more than 20 % / 50 % / 100 %
  (Kubecost's spend-change alert: a relative threshold over a baseline window's average);
- ``zscore``: (cost - trailing mean) / trailing std > 3.0 over the 7 days before (OpenCost's
  proposed default lookback) and over 28 days;
- ``mad``: (cost - trailing median) / (1.4826 MAD) > 3.5, same windows;
  both ignore days under the minimum cost of 0.10, as proposed for OpenCost.

    .venv/bin/python benchmarks/spend_anomalies.py              # 1,200 series, seed 1
    .venv/bin/python benchmarks/spend_anomalies.py --seed 2 --series 2000
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from detectors.spend import SpendDetector

WARMUP = 35
"""Days before any injected event; every method's history."""

MIN_COST = 0.10
"""The minimum cost of the OpenCost proposal: days below it are never flagged by the rules."""


@dataclass(frozen=True)
class Series:
    values: np.ndarray
    events: tuple[tuple[int, int], ...]
    """Each true anomaly as the days (first, last) on which a flag finds it."""
    kinds: tuple[str, ...]


def generate(n_series: int, days: int, seed: int) -> list[Series]:
    """The series and their true anomalies (see the module docstring); decided before tuning."""
    rng = np.random.default_rng(seed)
    out = []
    t = np.arange(days)
    for _ in range(n_series):
        level = float(np.exp(rng.uniform(np.log(5.0), np.log(5000.0))))
        week = 1.0 + rng.uniform(-0.05, 0.05, 7)
        if rng.random() < 0.7:
            dip = rng.uniform(0.4, 1.0)
            week[5:] *= dip
        trend = np.exp(rng.uniform(-0.002, 0.006) * t)
        sigma = rng.uniform(0.02, 0.12)
        x = level * week[t % 7] * trend * np.exp(rng.normal(0.0, sigma, days))
        events: list[tuple[int, int]] = []
        kinds: list[str] = []
        busy: set[int] = set()

        def free_day(busy: set[int], margin: int = 2) -> int | None:
            for _ in range(50):
                d = int(rng.integers(WARMUP, days - 1))
                if not any(abs(d - b) <= margin for b in busy):
                    return d
            return None

        quiet = rng.random() < 0.2
        if not quiet and rng.random() < 0.3:
            start = free_day(busy, 7)
            if start is not None:
                x[start:] *= rng.uniform(1.4, 2.5)
                events.append((start, start + 1))
                kinds.append("level_shift")
                busy.update(range(start, start + 8))
        if not quiet and rng.random() < 0.15:
            start = free_day(busy, 7)
            if start is not None:
                x[start:] *= rng.uniform(0.4, 0.7)
                busy.update(range(start, start + 8))
        if not quiet and rng.random() < 0.7:
            for _ in range(int(rng.integers(1, 4))):
                d = free_day(busy)
                if d is not None:
                    x[d] *= rng.uniform(1.5, 3.5)
                    events.append((d, d))
                    kinds.append("spike")
                    busy.add(d)
        if not quiet and rng.random() < 0.4:
            for _ in range(int(rng.integers(1, 3))):
                d = free_day(busy)
                if d is None:
                    continue
                if rng.random() < 0.5:
                    x[d] *= 1.0 - rng.uniform(0.3, 1.0)
                else:
                    moved = x[d] * rng.uniform(0.1, 0.3)
                    x[d] -= moved
                    x[d + 1] += moved
                busy.update((d, d + 1))
        order = np.argsort([e[0] for e in events])
        out.append(Series(x, tuple(events[i] for i in order), tuple(kinds[i] for i in order)))
    return out


# the rules FinOps tools ship ------------------------------------------------------------------
def kubecost_rule(x: np.ndarray, threshold: float, window: int = 7) -> np.ndarray:
    """Cost above the trailing ``window``-day mean by more than ``threshold`` (0.2 = 20 %)."""
    flags = np.zeros(len(x), dtype=bool)
    for t in range(window, len(x)):
        mean = x[t - window : t].mean()
        flags[t] = x[t] >= MIN_COST and x[t] > mean * (1.0 + threshold)
    return flags


def zscore_rule(x: np.ndarray, threshold: float = 3.0, window: int = 7) -> np.ndarray:
    flags = np.zeros(len(x), dtype=bool)
    for t in range(window, len(x)):
        past = x[t - window : t]
        sd = past.std(ddof=1)
        flags[t] = x[t] >= MIN_COST and sd > 0 and (x[t] - past.mean()) / sd > threshold
    return flags


def mad_rule(x: np.ndarray, threshold: float = 3.5, window: int = 7) -> np.ndarray:
    flags = np.zeros(len(x), dtype=bool)
    for t in range(window, len(x)):
        past = x[t - window : t]
        med = np.median(past)
        mad = 1.4826 * np.median(np.abs(past - med))
        flags[t] = x[t] >= MIN_COST and mad > 0 and (x[t] - med) / mad > threshold
    return flags


def detector_flags(x: np.ndarray, sensitivity: float | None = None) -> np.ndarray:
    det = SpendDetector() if sensitivity is None else SpendDetector(sensitivity=sensitivity)
    return np.array([d.anomaly for d in det.run(x)], dtype=bool)


# scoring --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Score:
    flags: int
    hits: int
    events: int
    found: int

    @property
    def precision(self) -> float:
        return self.hits / self.flags if self.flags else 0.0

    @property
    def recall(self) -> float:
        return self.found / self.events if self.events else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(series: list[Series], method: Callable[[np.ndarray], np.ndarray]) -> Score:
    flags = hits = events = found = 0
    for s in series:
        f = method(s.values)
        f[:WARMUP] = False
        flagged = np.flatnonzero(f)
        flags += len(flagged)
        covered = np.zeros(len(f), dtype=bool)
        for first, last in s.events:
            covered[first : last + 1] = True
            events += 1
            found += bool(f[first : last + 1].any())
        hits += int(covered[flagged].sum())
    return Score(flags, hits, events, found)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=1200)
    ap.add_argument("--days", type=int, default=140)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    series = generate(args.series, args.days, args.seed)
    kinds = [k for s in series for k in s.kinds]
    quiet = sum(not s.events for s in series)
    print(
        f"{len(series)} series x {args.days} days (seed {args.seed}): {kinds.count('spike')} spikes, "
        f"{kinds.count('level_shift')} level shifts, {quiet} series without an anomaly; "
        f"scored days {WARMUP}..{args.days - 1}"
    )
    methods: list[tuple[str, Callable[[np.ndarray], np.ndarray]]] = [
        ("detector (default sensitivity)", detector_flags),
        ("kubecost: > 7-day mean +20%", lambda x: kubecost_rule(x, 0.2)),
        ("kubecost: > 7-day mean +50%", lambda x: kubecost_rule(x, 0.5)),
        ("kubecost: > 7-day mean +100%", lambda x: kubecost_rule(x, 1.0)),
        ("rolling z-score 3.0, 7 days", lambda x: zscore_rule(x, 3.0, 7)),
        ("rolling z-score 3.0, 28 days", lambda x: zscore_rule(x, 3.0, 28)),
        ("rolling MAD 3.5, 7 days", lambda x: mad_rule(x, 3.5, 7)),
        ("rolling MAD 3.5, 28 days", lambda x: mad_rule(x, 3.5, 28)),
    ]
    print(f"{'method':34s} {'precision':>9s} {'recall':>7s} {'F1':>6s} {'flags':>6s} {'seconds':>8s}")
    for name, method in methods:
        started = time.perf_counter()
        s = score(series, method)
        took = time.perf_counter() - started
        print(f"{name:34s} {s.precision:9.3f} {s.recall:7.3f} {s.f1:6.3f} {s.flags:6d} {took:8.1f}")


if __name__ == "__main__":
    main()
