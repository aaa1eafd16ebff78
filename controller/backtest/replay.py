"""The ``controller`` policy of the backtest: the service's own check, replayed chunk by chunk.

Chunk ``t`` is day ``t`` (one check a day, at the start of the chunk). At each check the replay
measures what the service would measure and hands it to the same functions the service's check
uses (:mod:`controller.signals`), then to :func:`controller.core.decision.decide`:

- the realized reading of the serving version: its accuracy (regression: mean absolute error) on
  the newest chunk whose labels have arrived (chunk ``t - 1 - D``), if it served that chunk;
- before any such reading, the label-free estimate (CBPE) of the version on the last chunk it
  served, against its view of the version's reference (the training window);
- the drift share of chunk ``t - 1`` against the version's training window;
- the model's state and economics from its past retrains: when each was made, and whether it
  recovered (the new version beat the one it replaced on the new version's first chunk, known
  once that chunk's labels arrive).

It keeps what the service keeps between checks (each check's reading, the changes it dated, the
facts of each version) and nothing else. Nothing in a decision at chunk ``t`` comes from after
``t``: cutting the stream after chunk ``N`` leaves every decision before ``N`` as it was
(``tests/test_backtest_hindsight.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from controller.backtest.matrix import ErrorMatrix
from controller.core.decision import Action, Decision, Signals, decide, window_residual
from controller.core.economics import EconomicsConfig
from controller.core.policy import PolicyConfig
from controller.signals.levels import Estimated, Measured, Timing, VersionFacts, assess, format_changes
from controller.signals.measure import LabelFree, accuracy_se, fit_label_free, mae_se, usable_estimate
from controller.signals.state import RetrainFact, economics, model_state

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
"""Chunk ``t`` is day ``t`` after this: the service's clock in the replay."""
ESTIMATION_ERRORS = 20
"""Past estimation errors the service weighs an estimate's trust by (``Store.model_snapshot``)."""


def day(chunk: int) -> datetime:
    return EPOCH + timedelta(days=chunk)


def backtest_economics(error_cost: float, retrain_cost: float, chunk_rows: int, task: str) -> EconomicsConfig:
    """The backtest's money in the service's terms: one chunk is one day of traffic.

    The metric is the service's (accuracy, or the mean absolute error for regression). A point
    (0.01 of it) over 1,000 predictions is 10 misclassified rows (or 10 units of absolute error),
    so it is worth 10 x the error cost; a retrain costs ``retrain_cost`` (its fixed overhead).
    """
    return EconomicsConfig(
        metric="accuracy" if task == "classification" else "mae",
        higher_is_better=task == "classification",
        value_per_point=10.0 * error_cost,
        traffic_per_day=float(chunk_rows),
        compute_rate_per_hour=0.0,
        fixed_overhead=retrain_cost,
    )


@dataclass(frozen=True)
class CheckRecord:
    """What the service stores of one check and reads back at the next ones (see ``CheckPoint``)."""

    version: str
    source: str
    metric_value: float | None
    metric_se: float | None
    rows_from: datetime | None
    change_at: str | None
    metric_estimate: float | None = None


@dataclass
class Replay:
    """The replay's memory between checks, and what it decided."""

    matrix: ErrorMatrix
    history: list[CheckRecord] = field(default_factory=list)
    versions: dict[str, VersionFacts] = field(default_factory=dict)
    retrains: list[int] = field(default_factory=list)
    estimation_errors: list[float] = field(default_factory=list)
    """Newest first, as the store hands them out."""
    decisions: list[Decision] = field(default_factory=list)
    signals: list[Signals] = field(default_factory=list)
    """What each check handed to the decision, in order (chunk ``K + 1 + i`` at index ``i``)."""


def replay(
    matrix: ErrorMatrix,
    policy: PolicyConfig,
    *,
    retrain_cost: float,
    error_cost: float,
    window: int,
    label_delay: int = 0,
    task: str = "classification",
    retire_at: int | None = None,
) -> Replay:
    """Run the service's check at every chunk ``K+1..T-1`` and keep what it decided.

    ``retire_at``: a planned retirement at that chunk, the model config's ``retire_on`` (None: none).
    """
    k, t_end, n = matrix.initial_chunks, matrix.chunks, matrix.chunk_rows
    econ_cfg = backtest_economics(error_cost, retrain_cost, n, task)
    timing = Timing(period_days=1.0, label_delay_days=float(label_delay), train_window_days=float(window))
    state = Replay(matrix, versions={str(k): VersionFacts(str(k), day(k))})
    latest: str | None = None
    for t in range(k + 1, t_end):
        serving = state.retrains[-1] if state.retrains else k
        facts = state.versions[str(serving)]
        last = t - 1 - label_delay
        measured = _measure(matrix, serving, last, task) if last >= serving else None
        if measured is not None:
            point = _estimate(matrix, serving, last, task)
            if point is not None:
                state.estimation_errors.insert(0, abs(point.value - measured.value))
        estimated = _estimate(matrix, serving, t - 1, task)
        estimated, _ = usable_estimate(estimated, state.estimation_errors[:ESTIMATION_ERRORS], policy.tolerance_points)
        a = assess(
            higher_is_better=econ_cfg.higher_is_better,
            now=day(t),
            serving=facts,
            versions=state.versions,
            history=state.history,
            measured=measured,
            estimated=estimated,
            timing=timing,
        )
        signals = a.signals(
            econ_cfg.metric,
            drift_share=float(matrix.drift_share[serving, t - 1]),
            dataset_drift=bool(matrix.dataset_drift[serving, t - 1]),
            n_rows=n,
        )
        past = [
            RetrainFact(day(r), "promoted", _recovered(matrix, prev, r) if r <= last else None)
            for prev, r in zip([k, *state.retrains], state.retrains, strict=False)
        ]
        decision = decide(
            signals,
            economics(econ_cfg, (), past),
            model_state(
                owner="backtest",
                has_cost_metadata=True,
                retrains=past,
                latest_action=latest,
                retire_on=None if retire_at is None else day(retire_at),
                now=day(t),
            ),
            policy,
            day(t),
        )
        state.decisions.append(decision)
        state.signals.append(signals)
        latest = decision.action.value
        reading = measured if measured is not None else estimated
        state.history.append(
            CheckRecord(
                str(serving),
                "realized" if measured is not None else a.source if a.source == "estimated" else "none",
                None if reading is None else reading.value,
                measured.se if measured is not None else None,
                measured.rows_from if measured is not None else None,
                format_changes(a.changes),
            )
        )
        if decision.action == Action.TRIGGER:
            state.retrains.append(t)
            share = signals.window_fresh_share
            state.versions[str(t)] = VersionFacts(
                str(t),
                day(t),
                clean=share is None or share >= 1.0,
                residual_points=window_residual(share) * max(decision.numbers.drop_points, 0.0),
            )
    return state


def _measure(matrix: ErrorMatrix, version: int, chunk: int, task: str) -> Measured:
    """The service's realized reading of ``version`` on ``chunk`` (see :func:`controller.signals.measure.measure`)."""
    n = matrix.chunk_rows
    errors = float(matrix.errors[version, chunk])
    if task == "classification":
        value = (n - errors) / n
        return Measured(value, accuracy_se(value, n), n, day(chunk))
    return Measured(errors / n, mae_se(errors, float(matrix.squares[version, chunk]), n), n, day(chunk))


def _estimate(matrix: ErrorMatrix, version: int, chunk: int, task: str) -> Estimated | None:
    """CBPE's estimate of ``version``'s accuracy on ``chunk``, fitted on its training window."""
    if task != "classification" or version not in matrix.proba or chunk < version:
        return None
    key = (version, chunk)
    if key not in matrix.estimates:
        if version not in matrix.label_free:
            ref_proba, ref_y = matrix.reference[version]
            matrix.label_free[version] = fit_label_free(task, "accuracy", _scores(ref_proba, ref_y))
        label_free: LabelFree | None = matrix.label_free[version]
        rows = slice((chunk - version) * matrix.chunk_rows, (chunk - version + 1) * matrix.chunk_rows)
        proba = matrix.proba[version][rows]
        classes = np.unique(matrix.reference[version][1])
        pred = classes[proba.argmax(axis=1)]
        matrix.estimates[key] = None if label_free is None else label_free.estimate(pred, proba)
    return matrix.estimates[key]


def _scores(proba: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """A version's reference scores as the service registers them: labels, predictions, probabilities."""
    classes = np.unique(y)
    out = pd.DataFrame({"y_true": y, "y_pred": classes[proba.argmax(axis=1)]})
    for i, c in enumerate(classes):
        out[f"proba_{c}"] = proba[:, i]
    return out


def _recovered(matrix: ErrorMatrix, old: int, new: int) -> bool:
    """A retrain recovered when the new version beat the old one on the same chunk, its first.

    A point comparison, not a test: a retrain that buys nothing wins half the time, so a futile
    history still shows (and a small but real recovery is not mistaken for futility).
    """
    return bool(matrix.errors[new, new] < matrix.errors[old, new])


DEFAULT_POLICY = PolicyConfig()
"""Without ``--policy`` the backtest runs the policy the service ships as its default."""
