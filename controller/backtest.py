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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from controller.decision import Action, Economics, ModelState, Signals, decide, window_residual
from controller.economics import (
    EconomicsConfig,
    change_point,
    decay_rate,
    precision_weighted,
    recovery_probability,
    regime_days,
    regime_remaining,
    retrain_cost,
)
from controller.errors import DataError, UserError
from controller.policy import PolicyConfig
from detectors.drift import DriftOptions, detect_drift
from detectors.estimation import CBPE

ModelKind = Literal["logistic", "hgb"]
Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while the candidate models are fitted and scored."""

PERIODS = (1, 2, 4, 8)
PERF_THRESHOLD = 0.2
"""perf-threshold retrains when the error per row is this fraction above the model's first chunk."""
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Chunk ``t`` is day ``t`` after this: the decision engine sees one chunk as one day."""


@dataclass(frozen=True)
class BacktestConfig:
    """The backtest's knobs, in chunks and money (see the module docstring)."""

    chunk_rows: int
    initial_chunks: int
    window: int
    retrain_cost: float
    error_cost: float
    label_delay: int = 0
    model: ModelKind = "logistic"

    def __post_init__(self) -> None:
        if self.chunk_rows < 1:
            raise UserError(f"--chunk-rows must be at least 1, got {self.chunk_rows}")
        if self.initial_chunks < 1:
            raise UserError(f"--initial-chunks must be at least 1, got {self.initial_chunks}")
        if self.window < 1:
            raise UserError(f"--window must be at least 1, got {self.window}")
        if not (math.isfinite(self.retrain_cost) and self.retrain_cost >= 0):
            raise UserError(f"--retrain-cost must be a non-negative number, got {self.retrain_cost}")
        if not (math.isfinite(self.error_cost) and self.error_cost >= 0):
            raise UserError(f"--error-cost must be a non-negative number, got {self.error_cost}")
        if not 0 <= self.label_delay < self.initial_chunks:
            raise UserError(
                f"--label-delay must be in [0, --initial-chunks), got {self.label_delay}: "
                "a retrain needs at least one labelled chunk"
            )
        if self.model not in ("logistic", "hgb"):
            raise UserError(f"--model must be logistic or hgb, got {self.model!r}")


@dataclass(frozen=True)
class PolicyResult:
    name: str
    retrain_chunks: tuple[int, ...]
    errors: float
    """Misclassified rows (regression: summed absolute error) over chunks K..T-1."""
    retrain_cost: float
    error_cost: float
    total_cost: float
    vs_oracle: float
    cumulative_cost: tuple[float, ...]
    """Total cost after each chunk K..T-1, for the plot."""

    @property
    def retrains(self) -> int:
        return len(self.retrain_chunks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retrain_chunks": list(self.retrain_chunks),
            "retrains": self.retrains,
            "errors": round(self.errors) if float(self.errors).is_integer() else self.errors,
            "retrain_cost": self.retrain_cost,
            "error_cost": self.error_cost,
            "total_cost": self.total_cost,
            "vs_oracle": self.vs_oracle,
        }


@dataclass(frozen=True)
class BacktestResult:
    chunks: int
    initial_chunks: int
    task: str
    policies: tuple[PolicyResult, ...]

    def policy(self, name: str) -> PolicyResult:
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "policies": [p.to_dict() for p in self.policies]}


@dataclass(frozen=True)
class Stream:
    """The prepared input: features and target in time order, cut into chunks."""

    features: pd.DataFrame
    target: np.ndarray
    categorical: tuple[str, ...]
    task: Literal["classification", "regression"]
    chunk_rows: int
    chunks: int

    def rows(self, start: int, stop: int) -> slice:
        return slice(start * self.chunk_rows, stop * self.chunk_rows)


def prepare(
    data: pd.DataFrame,
    target: str,
    chunk_rows: int,
    time_column: str | None = None,
    categorical: Sequence[str] = (),
) -> Stream:
    """Validate and order the data; raise a one-line :class:`DataError` for anything unusable."""
    if target not in data.columns:
        raise DataError(f"target column {target!r} not found; columns are: {', '.join(map(str, data.columns))}")
    if time_column is not None:
        if time_column not in data.columns:
            raise DataError(f"time column {time_column!r} not found; columns are: {', '.join(map(str, data.columns))}")
        data = data.sort_values(time_column, kind="stable")
    missing = [c for c in categorical if c not in data.columns]
    if missing:
        raise DataError(f"categorical column(s) not found: {', '.join(missing)}")
    if data[target].isna().any():
        raise DataError(f"target column {target!r} has {int(data[target].isna().sum())} missing values")
    features = data.drop(columns=[c for c in (target, time_column) if c is not None]).reset_index(drop=True)
    if features.shape[1] == 0:
        raise DataError("no feature columns left besides the target and time columns")
    cats = list(dict.fromkeys([*categorical, *(c for c in features.columns if not is_numeric(features[c]))]))
    for c in cats:
        features[c] = features[c].astype(str)
    y_raw = data[target].to_numpy()
    if is_numeric(data[target]) and pd.Series(y_raw).nunique() > 20 and not pd.api.types.is_bool_dtype(data[target]):
        task: Literal["classification", "regression"] = "regression"
        y = y_raw.astype(float)
    else:
        task = "classification"
        y = y_raw.astype(str)
    chunks = len(features) // chunk_rows
    return Stream(features, y, tuple(cats), task, chunk_rows, chunks)


def is_numeric(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column))


def make_model(kind: ModelKind, task: str, categorical: Sequence[str], numeric: Sequence[str]) -> Pipeline:
    """The estimator a retrain fits: one-hot categoricals and scaled numbers, then the learner."""
    encode = ColumnTransformer(
        [
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(categorical)),
            # production data has gaps: a median fill keeps a missing number from failing the fit
            ("num", Pipeline([("fill", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), list(numeric)),
        ]
    )
    learner: BaseEstimator
    if kind == "logistic":
        learner = LogisticRegression(max_iter=1000) if task == "classification" else Ridge()
    else:
        learner = (
            HistGradientBoostingClassifier(random_state=0)
            if task == "classification"
            else HistGradientBoostingRegressor(random_state=0)
        )
    return Pipeline([("encode", encode), ("learn", learner)])


def train_window(t: int, initial_chunks: int, window: int, label_delay: int) -> tuple[int, int]:
    """Chunks ``[start, stop)`` a model serving from chunk ``t`` is fitted on.

    >>> train_window(5, 5, 3, 0), train_window(9, 5, 3, 2), train_window(6, 5, 8, 1)
    ((0, 5), (4, 7), (0, 5))
    """
    if t == initial_chunks:
        return 0, initial_chunks
    stop = t - label_delay
    return max(0, stop - window), stop


@dataclass(frozen=True)
class ErrorMatrix:
    """``errors[s, c]``: summed error of the model that starts serving at ``s`` on chunk ``c >= s``.

    Row ``K`` is the first model; rows ``K+1..T-1`` are retrains. ``squares`` holds the summed
    squared per-row errors, for intervals; ``drift[s, c]`` the share of drifted columns of chunk
    ``c`` against model ``s``'s training window (only ``c = t - 1`` for decisions at ``t`` is used).
    """

    errors: np.ndarray
    squares: np.ndarray
    drift_share: np.ndarray
    dataset_drift: np.ndarray
    initial_chunks: int
    chunk_rows: int
    proba: dict[int, np.ndarray] = field(default_factory=dict)
    """Classification: model ``s``'s class probabilities on rows of chunks ``s..T-1``, for label-free estimates."""
    reference: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Classification: model ``s``'s probabilities and the labels on its training window (CBPE's reference)."""

    @property
    def chunks(self) -> int:
        return int(self.errors.shape[1])


def error_matrix(
    stream: Stream, cfg: BacktestConfig, drift_threshold: float = 0.5, progress: Progress | None = None
) -> ErrorMatrix:
    """Fit every candidate model once and score it on every chunk it could serve."""
    k, t_end = cfg.initial_chunks, stream.chunks
    if t_end <= k:
        raise DataError(
            f"{len(stream.features)} rows make {t_end} chunks of {cfg.chunk_rows}: need more than "
            f"--initial-chunks={k} (lower --chunk-rows or --initial-chunks)"
        )
    errors = np.full((t_end, t_end), np.nan)
    squares = np.full((t_end, t_end), np.nan)
    drift_share = np.full((t_end, t_end), np.nan)
    dataset_drift = np.zeros((t_end, t_end), dtype=bool)
    proba: dict[int, np.ndarray] = {}
    reference: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    numeric = [c for c in stream.features.columns if c not in stream.categorical]
    starts = range(k, t_end)
    for i, s in enumerate(starts):
        lo, hi = train_window(s, k, cfg.window, cfg.label_delay)
        x_train, y_train = stream.features.iloc[stream.rows(lo, hi)], stream.target[stream.rows(lo, hi)]
        model = _fit(cfg.model, stream, x_train, y_train, numeric)
        x_rest = stream.features.iloc[stream.rows(s, t_end)]
        pred = model.predict(x_rest)
        if stream.task == "classification" and len(getattr(model, "classes_", ())) >= 2:
            proba[s] = model.predict_proba(x_rest)
            reference[s] = (model.predict_proba(x_train), y_train)
        y_rest = stream.target[stream.rows(s, t_end)]
        if stream.task == "classification":
            per_row = (pred != y_rest).astype(float)
        else:
            per_row = np.abs(pred.astype(float) - y_rest)
        per_chunk = per_row.reshape(t_end - s, cfg.chunk_rows)
        errors[s, s:] = per_chunk.sum(axis=1)
        squares[s, s:] = (per_chunk**2).sum(axis=1)
        # the decision at t+1 looks at chunk t's inputs against the model serving at t
        for c in range(s, t_end - 1):
            share, drifted = _drift(x_train, stream.features.iloc[stream.rows(c, c + 1)], stream, drift_threshold)
            drift_share[s, c], dataset_drift[s, c] = share, drifted
        if progress is not None:
            progress(i + 1, len(starts))
    return ErrorMatrix(errors, squares, drift_share, dataset_drift, k, cfg.chunk_rows, proba, reference)


def _fit(kind: ModelKind, stream: Stream, x: pd.DataFrame, y: np.ndarray, numeric: list[str]) -> Any:
    if stream.task == "classification" and len(np.unique(y)) < 2:
        # one class in the window: predict it (a real trainer would fail or do the same)
        return DummyClassifier(strategy="most_frequent").fit(x, y)
    return make_model(kind, stream.task, stream.categorical, numeric).fit(x, y)


def _drift(reference: pd.DataFrame, current: pd.DataFrame, stream: Stream, threshold: float) -> tuple[float, bool]:
    """Share of drifted columns and the dataset verdict of the service's drift detector."""
    report = detect_drift(reference, current, DriftOptions(categorical=stream.categorical, drift_share=threshold))
    return float(report.drift_share), bool(report.drifted)


# ---------------------------------------------------------------- pricing schedules


def serving_models(retrains: Sequence[int], initial_chunks: int, chunks: int) -> np.ndarray:
    """For each chunk K..T-1, the retrain point of the model serving it.

    >>> serving_models([7, 9], 5, 11).tolist()
    [5, 5, 7, 7, 9, 9]
    """
    out = np.full(chunks - initial_chunks, initial_chunks)
    for t in sorted(retrains):
        out[t - initial_chunks :] = t
    return out


def price(
    name: str, retrains: Sequence[int], matrix: ErrorMatrix, cfg: BacktestConfig, oracle_total: float | None = None
) -> PolicyResult:
    k, t_end = matrix.initial_chunks, matrix.chunks
    bad = [t for t in retrains if not k < t < t_end]
    if bad:
        raise ValueError(f"retrain chunks must be in ({k}, {t_end}), got {bad}")
    serving = serving_models(retrains, k, t_end)
    per_chunk = matrix.errors[serving, np.arange(k, t_end)]
    retrain_at = np.zeros(t_end - k)
    for t in retrains:
        retrain_at[t - k] += cfg.retrain_cost
    cumulative = np.cumsum(per_chunk * cfg.error_cost + retrain_at)
    errors = float(per_chunk.sum())
    total = float(cumulative[-1])
    ratio = total / oracle_total if oracle_total else (1.0 if total == 0 else math.inf)
    return PolicyResult(
        name,
        tuple(sorted(retrains)),
        errors,
        cfg.retrain_cost * len(retrains),
        errors * cfg.error_cost,
        total,
        ratio,
        tuple(float(v) for v in cumulative),
    )


def oracle_schedule(matrix: ErrorMatrix, retrain_cost: float, error_cost: float) -> list[int]:
    """The cheapest retrain schedule in hindsight (dynamic programming over retrain points).

    ``best[s]`` is the cheapest cost of chunks ``s..T-1`` when a model starts serving at ``s``:
    it serves until the next retrain ``u`` (or the end), then ``best[u]`` takes over.
    """
    k, t_end = matrix.initial_chunks, matrix.chunks
    best = np.zeros(t_end + 1)
    nxt = np.full(t_end + 1, t_end)
    for s in range(t_end - 1, k - 1, -1):
        run = np.cumsum(matrix.errors[s, s:] * error_cost)  # run[j]: serving chunks s..s+j
        # stopping before u = s+1..T: run[u-s-1] + (retrain + best[u] if u < T)
        follow = np.append(retrain_cost + best[s + 1 : t_end], 0.0)
        options = run + follow
        j = int(np.argmin(options))
        best[s], nxt[s] = options[j], s + 1 + j
    schedule, s = [], k
    while nxt[s] < t_end:
        s = int(nxt[s])
        schedule.append(s)
    return schedule


def periodic_schedule(every: int, initial_chunks: int, chunks: int) -> list[int]:
    return list(range(initial_chunks + every, chunks, every))


def drift_schedule(matrix: ErrorMatrix) -> list[int]:
    """Retrain at t when chunk t-1 drifted from the serving model's training window."""
    k, serving, out = matrix.initial_chunks, matrix.initial_chunks, []
    for t in range(k + 1, matrix.chunks):
        if matrix.dataset_drift[serving, t - 1]:
            out.append(t)
            serving = t
    return out


def _labelled_last(t: int, label_delay: int) -> int:
    """The last chunk whose labels have arrived when deciding at the start of chunk ``t``."""
    return t - 1 - label_delay


def perf_threshold_schedule(matrix: ErrorMatrix, label_delay: int, threshold: float = PERF_THRESHOLD) -> list[int]:
    """Retrain when the last labelled chunk's error is ``threshold`` above the model's first chunk."""
    k, serving, out = matrix.initial_chunks, matrix.initial_chunks, []
    for t in range(k + 1, matrix.chunks):
        last = _labelled_last(t, label_delay)
        if last <= serving:
            continue  # the serving model has at most its first chunk labelled: nothing to compare yet
        first, now = matrix.errors[serving, serving], matrix.errors[serving, last]
        if now > first * (1 + threshold):
            out.append(t)
            serving = t
    return out


# ---------------------------------------------------------------- the controller


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


def run_backtest(
    stream: Stream,
    cfg: BacktestConfig,
    policy: PolicyConfig = BACKTEST_POLICY,
    progress: Progress | None = None,
) -> BacktestResult:
    """Every policy's cost on the same stream, and its ratio to the hindsight oracle."""
    matrix = error_matrix(stream, cfg, policy.drift_share_threshold, progress)
    return compare(matrix, cfg, policy, stream.task)


def compare(matrix: ErrorMatrix, cfg: BacktestConfig, policy: PolicyConfig, task: str) -> BacktestResult:
    """Price every policy on one error matrix (the matrix does not depend on the costs)."""
    k, t_end = matrix.initial_chunks, matrix.chunks
    oracle = price("oracle", oracle_schedule(matrix, cfg.retrain_cost, cfg.error_cost), matrix, cfg)
    schedules: list[tuple[str, list[int]]] = [("never", [])]
    schedules += [(f"periodic-{p}", periodic_schedule(p, k, t_end)) for p in PERIODS]
    schedules += [
        ("drift-only", drift_schedule(matrix)),
        ("perf-threshold", perf_threshold_schedule(matrix, cfg.label_delay)),
        ("controller", controller_schedule(matrix, cfg, policy, task)),
    ]
    results = [price(name, sched, matrix, cfg, oracle.total_cost) for name, sched in schedules]
    oracle = price("oracle", oracle.retrain_chunks, matrix, cfg, oracle.total_cost)
    return BacktestResult(t_end, k, task, (*results, oracle))


def load_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; a missing or unreadable file is a one-line DataError."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"{path}: cannot read as {'Parquet' if path.suffix == '.parquet' else 'CSV'} ({exc})") from None


def plot(result: BacktestResult, out: Path) -> None:
    """Cumulative cost of every policy over the chunks, to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5))
    x = np.arange(result.initial_chunks, result.chunks)
    for p in result.policies:
        bold = p.name in ("controller", "oracle")
        label = f"{p.name} ({p.total_cost:,.0f})"
        ax.plot(x, p.cumulative_cost, label=label, linewidth=2.5 if bold else 1.0, alpha=1.0 if bold else 0.7)
    ax.set_xlabel("chunk")
    ax.set_ylabel("cumulative cost")
    ax.set_title("Retraining policies: cumulative cost")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(out)
    except OSError as exc:
        raise UserError(f"{out}: cannot write the plot ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
