"""Measuring one check's readings: a realized metric with its standard error, and the label-free
estimate of a version (CBPE for classifiers, the direct-loss estimator for regression), fitted once
on the reference scores registered with it.

Shared by the service's check and the backtest's replay, so a reading means the same in both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from controller.signals.levels import Estimated
from detectors.decay import trust_weight
from detectors.estimation import (
    CBPE,
    REGRESSION_ESTIMABLE,
    DirectLossEstimator,
    expected_binary_metrics,
    expected_multiclass_metrics,
    two_sided_z,
)
from detectors.performance import class_codes, realized_performance

CBPE_METRICS = frozenset({"accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss"})
"""Classification metrics CBPE estimates."""


def accuracy_se(value: float, n: int) -> float:
    """Binomial standard error of an accuracy (or error rate) measured on ``n`` rows; the rate is kept
    one row away from 0 and 1, where the binomial formula would claim certainty.

    >>> round(accuracy_se(0.9, 400), 4), round(accuracy_se(1.0, 100), 4)
    (0.015, 0.0099)
    """
    rate = min(max(1.0 - value, 1.0 / n), 1.0 - 1.0 / n)
    return math.sqrt(rate * (1.0 - rate) / n)


def measure(
    task: Literal["classification", "regression"],
    metric: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    min_rows: int = 1,
    confidence: float = 0.9,
) -> tuple[float, float] | None:
    """A realized ``metric`` and its standard error, or None with fewer than ``min_rows`` rows.

    Accuracy is a proportion of independent rows (binomial error); the mean absolute error is a
    mean (its sample error); any other metric takes its error from the bootstrap interval.
    """
    n = len(y_true)
    if n < max(min_rows, 1):
        return None
    if task == "classification" and metric == "accuracy":
        value = float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))
        return value, accuracy_se(value, n)
    if task == "regression" and metric == "mae":
        err = np.abs(np.asarray(y_pred, dtype=float) - np.asarray(y_true, dtype=float))
        return float(err.mean()), mae_se(float(err.sum()), float((err**2).sum()), n)
    rep = realized_performance(y_true, y_pred, proba, task=task, metrics=[metric], min_samples=1, confidence=confidence)
    mv = rep.metrics[metric]
    if mv.value is None or not math.isfinite(mv.value):
        return None
    if mv.lower is None or mv.upper is None:
        return float(mv.value), 0.0
    return float(mv.value), (mv.upper - mv.lower) / (2.0 * two_sided_z(confidence))


def mae_se(total: float, squares: float, n: int) -> float:
    """Standard error of a mean absolute error from the sum and the sum of squares of the errors."""
    mean = total / n
    var = max(squares / n - mean * mean, 0.0) * n / max(n - 1, 1)
    return math.sqrt(var / n)


@dataclass
class LabelFree:
    """A label-free estimator fitted on a version's reference scores, with its view of that reference."""

    metric: str
    estimator: Any
    reference: float
    features: tuple[str, ...] = ()

    def point(self, pred: np.ndarray, proba: np.ndarray | None, rows: pd.DataFrame | None = None) -> float | None:
        """The estimate's value alone, without its interval: what a check scores against the realized
        value of the same rows. For CBPE the expected metric from the same calibration map, without
        the label simulations that make its interval (the same number, a fraction of the time)."""
        if not isinstance(self.estimator, CBPE):
            est = self.estimate(pred, proba, rows)
            return None if est is None else est.value
        if proba is None:
            return None
        raw = np.asarray(_positive(proba), dtype=np.float64)
        hit = class_codes(pred, self.estimator.classes_)
        ranks = self.metric in ("roc_auc", "pr_auc")
        if self.estimator.binary_:
            point = expected_binary_metrics(raw, self.estimator.calibrate(raw), hit, ranks=ranks)
        else:
            labels = [str(c) for c in self.estimator.classes_]
            point = expected_multiclass_metrics(raw, self.estimator.calibrate(raw), hit, ranks=ranks, labels=labels)
        value = float(point[self.metric])
        return value if math.isfinite(value) else None

    def estimate(
        self, pred: np.ndarray, proba: np.ndarray | None, rows: pd.DataFrame | None = None
    ) -> Estimated | None:
        """The metric on rows without labels; None when the inputs it needs are missing."""
        if isinstance(self.estimator, CBPE):
            if proba is None:
                return None
            est = self.estimator.estimate(_positive(proba), pred)[self.metric]
        else:
            if rows is None or not all(c in rows.columns for c in self.features):
                return None
            est = self.estimator.estimate(rows[list(self.features)], pred)[self.metric]
        if not math.isfinite(est.estimate):
            return None
        lower = est.lower if math.isfinite(est.lower) else est.estimate
        upper = est.upper if math.isfinite(est.upper) else est.estimate
        return Estimated(float(est.estimate), float(lower), float(upper), self.reference)


def fit_label_free(task: str, metric: str, scores: pd.DataFrame) -> LabelFree | None:
    """Fit the estimator of ``metric`` on reference ``scores`` (``y_true``, ``y_pred``, ``proba_<class>``
    columns for classifiers; the input columns besides them for regression), or None when it cannot."""
    if not len(scores):
        return None
    if task == "classification":
        cols = [c for c in scores.columns if c.startswith("proba_")]
        if not cols or metric not in CBPE_METRICS:
            return None
        ref_proba = _positive(scores[cols].to_numpy())
        cbpe = CBPE(metrics=(metric,)).fit(ref_proba, scores["y_true"].to_numpy())
        reference = cbpe.estimate(ref_proba, scores["y_pred"].to_numpy())[metric].estimate
        return LabelFree(metric, cbpe, float(reference))
    features = tuple(c for c in scores.columns if c not in ("y_true", "y_pred"))
    if metric not in REGRESSION_ESTIMABLE or not features:
        return None
    dle = DirectLossEstimator(metrics=(metric,)).fit(scores[list(features)], scores["y_true"], scores["y_pred"])
    reference = dle.estimate(scores[list(features)], scores["y_pred"])[metric].estimate
    return LabelFree(metric, dle, float(reference), features)


def usable_estimate(
    estimated: Estimated | None, past_abs_errors: Sequence[float], tolerance_points: float, min_trust: float = 0.25
) -> tuple[Estimated | None, float]:
    """An estimate discounted by what it got wrong before (:func:`detectors.decay.trust_weight`): its
    interval widened by the root mean square of its past errors, or dropped below ``min_trust``.

    Errors are weighed against the policy's tolerance, and at least one point: with no tolerance any
    error at all would silence the estimate for good."""
    trust = trust_weight(past_abs_errors, max(tolerance_points, 1.0))
    if estimated is None or trust < min_trust:
        return None, trust
    errors = [float(e) for e in past_abs_errors if e is not None and math.isfinite(e)]
    if not errors:
        return estimated, trust
    rms = float(np.sqrt(np.mean(np.square(errors))))
    return Estimated(estimated.value, estimated.lower - rms, estimated.upper + rms, estimated.reference), trust


def _positive(proba: np.ndarray) -> np.ndarray:
    """Binary problems use the positive-class column; multiclass the full matrix."""
    return proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba
