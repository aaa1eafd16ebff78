"""The backtest: what each retraining policy would have cost on a labelled history.

Protocol (DESIGN.md): rows in time order are cut into chunks of ``chunk_rows`` rows (a trailing
partial chunk is dropped); the first model is fitted on chunks ``[0, K)`` and serves from chunk
``K`` for free; a retrain "at t" fits on the last ``W`` chunks whose labels have arrived before
``t`` (chunks ``[t - D - W, t - D)`` with a label delay of ``D`` chunks) and serves from chunk
``t``; cost = retrain cost x retrains + error cost x misclassified rows (regression: x absolute
error) over chunks ``K..T-1``.

Every retrain point ``t`` gives one deterministic model, so the backtest fits each candidate once,
scores it on every later chunk (an ``O(T^2)`` error matrix) and prices any schedule from that
matrix. The policies compared on the same matrix:

- ``never``: the first model serves throughout;
- ``periodic-k``: a retrain every ``k`` chunks;
- ``drift-only``: a retrain whenever the inputs of the last chunk drifted from the serving model's
  training window (dataset drift verdict);
- ``perf-threshold``: a retrain whenever the last labelled chunk's error is 20 % above the serving
  model's first labelled chunk;
- ``controller``: :func:`controller.decision.decide` with the given policy, fed what the service
  would have known at each chunk (realized errors of labelled chunks, drift share, the outcomes
  of past retrains);
- ``oracle``: the cheapest schedule in hindsight, by dynamic programming over the matrix.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from controller.backtest.baselines import _labelled_last
from controller.backtest.data import BacktestConfig
from controller.backtest.matrix import ErrorMatrix
from controller.core.decision import Action, Economics, ModelState, Signals, decide, window_residual
from controller.core.economics import EconomicsConfig, recovery_probability, retrain_cost
from controller.core.forecasts import change_point, decay_rate, precision_weighted, regime_days, regime_remaining
from controller.core.policy import PolicyConfig
from detectors.estimation import CBPE

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Chunk ``t`` is day ``t`` after this: the decision engine sees one chunk as one day."""


def backtest_economics(cfg: BacktestConfig) -> EconomicsConfig:
    """The backtest's economics in the service's terms: one chunk is one day of traffic.

    A metric point (0.01 of the error rate, or of the mean absolute error) over 1,000 predictions
    is 10 misclassified rows (or 10 units of absolute error), so it is worth 10 x the error cost.
    """
    return EconomicsConfig(
        metric="error_per_row",
        higher_is_better=False,
        value_per_point=10.0 * cfg.error_cost,
        traffic_per_day=float(cfg.chunk_rows),
        compute_rate_per_hour=0.0,
        fixed_overhead=cfg.retrain_cost,
    )


def _chunk_sd(total: float, squares: float, n: int, task: str) -> float:
    """Standard deviation of one chunk's mean error per row (binomial for rates)."""
    mean = total / n
    if task == "classification":
        rate = min(max(mean, 1.0 / n), 1.0 - 1.0 / n)
        return math.sqrt(rate * (1.0 - rate) / n)
    var = max(squares / n - mean * mean, 0.0) * n / max(n - 1, 1)
    return math.sqrt(var / n)


def controller_schedule(
    matrix: ErrorMatrix, cfg: BacktestConfig, policy: PolicyConfig, task: str = "classification"
) -> list[int]:
    """Replay the service's decision engine chunk by chunk, with only what it would have known.

    At the start of chunk ``t`` the service knows the errors of chunks up to ``t - 1 - D`` for
    every version it has served (a replaced champion keeps being scored in shadow for one chunk,
    so each retrain's outcome is known once the new version's first chunk is labelled) and the
    drift of chunk ``t - 1``. From that history it derives what the decision needs:

    - the baseline: what a fresh version achieves, the median level at age 0 of every version that
      was trained on a window without a change in it: the first labelled chunk of the serving
      version, and for a replaced one the mean of its first chunks (up to 8, before any break)
      with the decay taken out (less noisy than one chunk, and independent of the version under
      test);
    - the decay of fresh versions (:func:`~controller.economics.decay_rate`) and the last abrupt
      change in the data (:func:`~controller.economics.change_point`), hence how much of a
      retrain's training window would postdate the change;
    - the outcomes of past retrains (the new version beat the old one on the same chunk);
    - the serving version's current level: its last chunks (up to 8, since it started or the data
      last changed) with the learned decay taken out and carried forward to the last served chunk;
      for a version fitted on a clean window, with no change since, weighed by precision against
      where the decay line puts it (the fresh level plus the decay over its age, as uncertain as
      the spread of the fresh levels, once three are known); before its first label arrives, the
      level it is expected to start at (the fresh level plus what a stale training window leaves of
      the drop, :func:`~controller.decision.window_residual`) moved by the label-free estimate's
      change.
    """
    k, t_end, n = matrix.initial_chunks, matrix.chunks, matrix.chunk_rows
    econ_cfg = backtest_economics(cfg)
    cost = retrain_cost(econ_cfg)
    retrains: list[int] = []
    clean = {k: True}  # trained on a window with no change in it
    residual_drop: dict[int, float] = {}  # what a stale training window is expected to leave of the drop
    outcomes: list[bool] = []
    changes: set[int] = set()
    estimators: dict[int, tuple[CBPE, float]] = {}
    decay = 0.0
    last_action: Action | None = None
    for t in range(k + 1, t_end):
        last = _labelled_last(t, cfg.label_delay)
        starts = [k, *retrains]
        serving = starts[-1]
        ends = [*retrains, t]  # each version served chunks [start, end)
        history = {s: 100.0 * matrix.errors[s, s : min(e, last + 1)] / n for s, e in zip(starts, ends, strict=True)}
        # a clean version's level at age 0: its first chunk, or for a replaced version (not the one
        # under test) the mean of its first chunks before any break, decay taken out: less noise
        fresh = [
            history[s][: 1 if s == serving else min(_until_break(s, len(history[s]), changes), _POOL)]
            for s in starts
            if clean[s] and len(history[s])
        ]
        levels = [float(np.mean(h - decay * np.arange(len(h)))) for h in fresh]
        current = history[serving]
        if (
            clean[serving]
            and len(current)
            and len(levels) >= 2
            and _starts_after_change(matrix, serving, levels[-1] - float(np.median(levels[:-1])), decay, task)
        ):
            # fitted on a clean window just before a change: the jump is between versions, where the
            # version's own history cannot show it, and its level is no fresh level
            changes.add(serving)
            clean[serving] = False
            fresh.pop()
            levels.pop()
        baseline = float(np.median(levels)) if levels else None
        if baseline is not None and len(current) >= 2:
            # the noisier end of the series sets the bar, so a high error level does not fake jumps
            worst = serving + int(np.argmax(current))
            sd = 100.0 * _chunk_sd(matrix.errors[serving, worst], matrix.squares[serving, worst], n, task)
            # a fall counts too: the data came back to what the version learned, and its level since
            # then, not the pooled one from before, is what a retrain would recover
            jump = change_point(list(current - baseline), sd, decay, falls=True)
            if jump is not None:
                changes.add(serving + jump)
        change = max(changes, default=None)
        # how fresh versions decay, from the stretches of their lives before a break in the data
        decay = decay_rate([list(h[: _until_break(s, len(h), changes)]) for s, h in history.items()]) or 0.0
        outcomes = [_recovered(matrix, prev, r) for prev, r in zip(starts, retrains, strict=False) if r <= last]
        fresh_share, fresh_in = _window_freshness(change, t, cfg)
        shift = _estimated_shift(matrix, serving, t - 1, estimators) if not len(current) else None
        context: dict[str, Any] = {
            "drift_share": float(matrix.drift_share[serving, t - 1]),
            "dataset_drift": bool(matrix.dataset_drift[serving, t - 1]),
            "n_rows": n,
            "decay_points_per_day": decay,
            "window_fresh_share": fresh_share,
            "fresh_window_in_days": fresh_in,
            "regime_days": regime_days(sorted(changes), float(t), float(k)),
            "regime_remaining": regime_remaining(sorted(changes), float(t)),
        }
        metric = "error_rate" if task == "classification" else "mae"
        if baseline is None or (not len(current) and shift is None):
            signals = Signals(metric, None, None, "none", **context)
        elif shift is not None:
            # no label for this version yet: its expected level (the fresh level, plus what a stale
            # training window left of the drop) moved by the label-free estimate's change (CBPE)
            level = baseline / 100.0 + residual_drop.get(serving, 0.0)
            signals = Signals(
                metric,
                baseline / 100.0,
                level + shift[0],
                "estimated",
                current_low=level + shift[1],
                current_high=level + shift[2],
                **context,
            )
        else:
            # the last chunks since the version started (or the data last changed), at most as many
            # as the decay is read over, each carried forward with the learned decay to the last
            # served chunk, whose labels are still D chunks away: the level of a line of known
            # slope, less noisy than the last chunk alone and never extrapolated far
            recent = current[-min(len(current), _POOL, max(last + 1 - (change or 0), 1)) :]
            ages = np.arange(len(recent)) - (len(recent) - 1)
            now_rate = (float(np.mean(recent - decay * ages)) + decay * cfg.label_delay) / 100.0
            if task == "classification":
                sd_chunk = _chunk_sd(now_rate * n, 0.0, n, task)
                sd_fresh = _chunk_sd(baseline * n / 100.0, 0.0, n, task)
            else:
                sd_chunk = sd_fresh = _chunk_sd(matrix.errors[serving, last], matrix.squares[serving, last], n, task)
            # the baseline is an estimate too, a mean over the chunks pooled into the fresh levels (not
            # one chunk per version): its error widens the interval
            half = _Z * math.sqrt(sd_chunk**2 / len(recent) + sd_fresh**2 / sum(len(h) for h in fresh))
            if clean[serving] and (change is None or change <= serving) and len(levels) >= 3:
                # a version fitted on a clean window is expected on the line of the learned decay from
                # the fresh level, and past versions' fresh levels show how far one strays from it:
                # that forecast and the measured level, weighed by their precisions
                forecast = (baseline + decay * (t - 1 - serving)) / 100.0
                spread = float(np.var(levels, ddof=1)) / 1e4
                now_rate = precision_weighted(now_rate, sd_chunk**2 / len(recent), forecast, spread)
            signals = Signals(
                metric,
                baseline / 100.0,
                now_rate,
                "realized",
                current_low=now_rate - half,
                current_high=now_rate + half,
                **context,
            )
        state = ModelState(
            owner="backtest",
            last_retrain_at=_EPOCH + timedelta(days=serving) if serving > k else None,
            recent_recoveries=tuple(outcomes),
            last_action=last_action,
            remaining_days=float(t_end - t),
        )
        economics = Economics(econ_cfg, cost, recovery_probability(outcomes))
        decision = decide(signals, economics, state, policy, _EPOCH + timedelta(days=t))
        last_action = decision.action
        if decision.action == Action.TRIGGER:
            retrains.append(t)
            clean[t] = fresh_share is None or fresh_share >= 1.0
            if signals.current is not None and signals.baseline is not None:
                residual_drop[t] = window_residual(fresh_share) * max(signals.current - signals.baseline, 0.0)
    return retrains


_POOL = 8
"""Chunks pooled into the current error estimate: the span over which :func:`decay_rate` reads the decay."""


_Z = 3.0
"""Interval width in standard errors: the backtest checks every chunk, so 95 % would fire on noise."""


def _estimated_shift(
    matrix: ErrorMatrix, model: int, chunk: int, estimators: dict[int, tuple[CBPE, float]]
) -> tuple[float, float, float] | None:
    """CBPE's change in ``model``'s error rate from its training window to ``chunk``, with an interval.

    A change, not a level: CBPE's level is off for a model fitted on a mixed window (its scores are
    less confident everywhere), but its change between the reference and the chunk is what it
    measures well (covariate shift). ``None`` without probabilities.
    """
    if model not in matrix.proba or chunk < model:
        return None
    if model not in estimators:
        ref_proba, ref_y = matrix.reference[model]
        cbpe = CBPE(metrics=("accuracy",), confidence=0.99).fit(ref_proba, ref_y)
        estimators[model] = (cbpe, cbpe.estimate(ref_proba)["accuracy"].estimate)
    cbpe, ref_acc = estimators[model]
    rows = slice((chunk - model) * matrix.chunk_rows, (chunk - model + 1) * matrix.chunk_rows)
    acc = cbpe.estimate(matrix.proba[model][rows])["accuracy"]
    if not (math.isfinite(acc.estimate) and math.isfinite(ref_acc)):
        return None
    return ref_acc - acc.estimate, ref_acc - acc.upper, ref_acc - acc.lower


def _starts_after_change(matrix: ErrorMatrix, version: int, jump: float, decay: float, task: str) -> bool:
    """Whether a version's first chunk (``jump`` points above the other fresh levels) follows a change."""
    n = matrix.chunk_rows
    sd = 100.0 * _chunk_sd(matrix.errors[version, version], matrix.squares[version, version], n, task)
    return change_point([0.0, jump], sd, decay) == 1


def _until_break(start: int, length: int, changes: set[int]) -> int:
    """How many chunks of a version's history, from ``start``, come before the first change after it."""
    later = [c for c in changes if c > start]
    return min(length, min(later) - start) if later else length


def _recovered(matrix: ErrorMatrix, old: int, new: int) -> bool:
    """A retrain recovered when the new version beat the old one on the same chunk, its first.

    A point comparison, not a test: a retrain that buys nothing wins half the time, so a futile
    history still shows (and a small but real recovery is not mistaken for futility).
    """
    return bool(matrix.errors[new, new] < matrix.errors[old, new])


def _window_freshness(change: int | None, t: int, cfg: BacktestConfig) -> tuple[float | None, float | None]:
    """Share of the training window of a retrain at ``t`` after the last change, and chunks until all of it is."""
    if change is None:
        return None, None
    stop = t - cfg.label_delay
    share = min(max((stop - change) / cfg.window, 0.0), 1.0)
    return share, float(max(change + cfg.window - stop, 0))


BACKTEST_POLICY = PolicyConfig(
    min_roi=0.2,
    hysteresis=0.0,
    tolerance_points=0.0,
    cooldown_hours=0.0,
    require_owner=True,
    require_cost_metadata=True,
)
"""The policy the backtest uses without ``--policy``: the service defaults, minus the gates that
only make sense in wall-clock time (a cooldown, hysteresis against flip-flopping between checks
hours apart) or that the evidence already covers (a fixed tolerance next to the interval test),
and with a smaller ROI margin (0.2 instead of 1: the recovery probability is learned and the
horizon forecast, so the margin only has to absorb their error)."""
