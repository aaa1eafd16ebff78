"""Label-free performance estimates: CBPE for classifiers, a direct-loss estimator for regression.

CBPE (confidence-based performance estimation) reads a calibrated probability ``p`` as the
chance that a row is positive, so the expected confusion matrix of a chunk is a sum of ``p`` and
``1 - p`` over the rows, and every metric follows from it. It holds while ``P(y | score)`` stays
as it was on the reference data (covariate shift); it cannot see concept drift, where the same
score starts meaning a different chance of being right.

Each estimate carries an interval for the *realized* value of the chunk, not for the expectation:
labels are drawn ``y ~ Bernoulli(p)`` (multiclass: ``Categorical(p)``) a few hundred times and the
metric is computed on each draw, so the interval is as wide as the realized metric's own sampling
spread for a chunk of that size; the draws cycle through calibration maps fitted on bootstrap
resamples of the reference, so the interval also carries the calibration map's own error.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref_p = rng.uniform(size=20_000)
>>> ref_y = (rng.uniform(size=20_000) < ref_p).astype(int)
>>> est = CBPE(metrics=("roc_auc", "accuracy"), calibration="none").fit(ref_p, ref_y)
>>> cur_p = rng.beta(2, 2, size=5_000)
>>> e = est.estimate(cur_p)["accuracy"]
>>> print(f"{e.estimate:.3f} [{e.lower:.3f}, {e.upper:.3f}]")
0.687 [0.677, 0.698]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import special, stats
from sklearn.base import RegressorMixin, clone
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from detectors.performance import CLASSIFICATION_METRICS, FloatArray, _RankedScores, _safe_div, class_codes

Calibration = Literal["auto", "isotonic", "none"]
REGRESSION_ESTIMABLE = ("mae", "rmse")
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class MetricEstimate:
    """A label-free estimate of a metric and the interval its realized value should fall in."""

    estimate: float
    lower: float
    upper: float
    n: int = 0
    std: float = float("nan")


def two_sided_z(confidence: float) -> float:
    """The normal quantile that leaves ``(1 - confidence) / 2`` in each tail (1.645 at 0.9);
    ``scipy.special.ndtri`` is ``scipy.stats.norm.ppf`` without its per-call overhead."""
    return float(special.ndtri(0.5 + confidence / 2.0))


def expected_calibration_error(proba: npt.ArrayLike, y: npt.ArrayLike, n_bins: int = 20) -> float:
    """Binary ECE over equal-mass bins: the mean gap between predicted and observed positive rate.

    >>> expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0, 0, 1, 1], n_bins=2)
    0.1
    """
    p = np.asarray(proba, dtype=np.float64)
    t = np.asarray(y, dtype=np.float64)
    order = np.argsort(p, kind="mergesort")
    gaps = [abs(p[b].mean() - t[b].mean()) * len(b) for b in np.array_split(order, n_bins) if len(b)]
    return float(round(sum(gaps) / len(p), 12))


def expected_binary_metrics(
    score: FloatArray, p: FloatArray, hit: npt.NDArray[np.int64], ranks: bool = True
) -> dict[str, float]:
    """Binary metrics expected when row i is positive with probability ``p[i]``.

    ``score`` is the model's raw score (it ranks rows for AUC and enters the log loss), ``hit``
    the 0/1 prediction. Each row adds ``p`` to the expected positives and ``1 - p`` to the expected
    negatives of its cell; ratio metrics are ratios of these expectations (for a chunk of
    thousands of rows the gap to the expected ratio is far below the sampling noise).

    >>> score = np.array([0.2, 0.7, 0.9])
    >>> print(round(expected_binary_metrics(score, score, np.array([0, 1, 1]))["accuracy"], 4))
    0.8
    """
    h = hit.astype(np.float64)
    tp, fp, fn = float(p @ h), float((1 - p) @ h), float(p @ (1 - h))
    tn = len(p) - tp - fp - fn
    out = {
        "accuracy": (tp + tn) / len(p),
        "precision": tp / (tp + fp) if tp + fp > 0 else float("nan"),
        "recall": tp / (tp + fn) if tp + fn > 0 else float("nan"),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else float("nan"),
    }
    if ranks:
        ranked = _RankedScores(score)
        auc, ap = ranked.auc_ap(ranked.group(p[None, :]), ranked.group(1.0 - p[None, :]), np.array([p @ (1 - p)]))
        out["roc_auc"], out["pr_auc"] = float(auc[0]), float(ap[0])
    q = np.clip(score, _EPS, 1 - _EPS)
    out["log_loss"] = float(np.mean(-(p * np.log(q) + (1 - p) * np.log(1 - q))))
    return out


def expected_multiclass_metrics(
    score: FloatArray,
    p: FloatArray,
    hit: npt.NDArray[np.int64],
    ranks: bool = True,
    labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """Multiclass metrics expected when row i is of class j with probability ``p[i, j]``.

    Macro averages as in :mod:`detectors.performance`, plus ``precision[c]``, ``recall[c]`` and
    ``f1[c]`` per class when ``labels`` names the columns; AUC and average precision are
    one-vs-rest on the raw ``score`` columns with fractional labels ``p[:, j]``.

    >>> p = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.3, 0.6]])
    >>> print(round(expected_multiclass_metrics(p, p, p.argmax(axis=1))["accuracy"], 4))
    0.7
    """
    n, k = p.shape
    onehot = np.eye(k)[hit]
    tp = (p * onehot).sum(axis=0)
    pred_pos, act_pos = onehot.sum(axis=0), p.sum(axis=0)
    out = {
        "accuracy": float(tp.sum() / n),
        "precision": float(np.mean(np.where(pred_pos > 0, tp / np.maximum(pred_pos, 1), 0.0))),
        "recall": float(np.mean(tp / act_pos)),
        "f1": float(np.mean(2 * tp / (pred_pos + act_pos))),
    }
    for j, c in enumerate(labels or []):
        out[f"precision[{c}]"] = float(tp[j] / pred_pos[j]) if pred_pos[j] > 0 else float("nan")
        out[f"recall[{c}]"] = float(tp[j] / act_pos[j])
        out[f"f1[{c}]"] = float(2 * tp[j] / (pred_pos[j] + act_pos[j]))
    if ranks:
        aucs, aps = [], []
        for j in range(k):
            ranked = _RankedScores(score[:, j])
            pj = p[None, :, j]
            auc, ap = ranked.auc_ap(ranked.group(pj), ranked.group(1.0 - pj), np.array([pj[0] @ (1 - pj[0])]))
            aucs.append(float(auc[0]))
            aps.append(float(ap[0]))
        out["roc_auc"], out["pr_auc"] = float(np.mean(aucs)), float(np.mean(aps))
    q = np.clip(score / score.sum(axis=1, keepdims=True), _EPS, 1 - _EPS)
    out["log_loss"] = float(np.mean(np.sum(-p * np.log(q), axis=1)))
    return out


class CBPE:
    """Confidence-based performance estimation for binary and multiclass classifiers.

    Parameters
    ----------
    metrics:
        Any of accuracy, precision, recall, f1, roc_auc, pr_auc, log_loss (multiclass: macro
        averages, one-vs-rest AUC, and ``precision[c]``, ``recall[c]``, ``f1[c]`` per class).
    confidence:
        Coverage of the intervals, 0.9 = the 5th to 95th percentile of simulated realized values.
    calibration:
        ``auto`` calibrates (isotonic, per class for multiclass) only when cross-fitting on the
        reference shows it lowers the calibration error; ``isotonic`` always; ``none`` never.
    threshold:
        Binary decision threshold on the raw score when no predictions are passed.
    n_sim:
        Label draws per estimate for the interval.
    n_calibration_boot:
        Calibration maps fitted on bootstrap resamples of the reference; the label draws cycle
        through them, so the interval also carries the calibration map's own estimation error
        (on the benchmark's covariate shift: ROC AUC coverage 87% with them, 85% without; accuracy 92%
        against 89%).
    """

    def __init__(
        self,
        metrics: Sequence[str] = ("roc_auc", "accuracy", "f1"),
        confidence: float = 0.9,
        calibration: Calibration = "auto",
        threshold: float = 0.5,
        n_sim: int = 400,
        n_calibration_boot: int = 40,
        seed: int = 0,
    ) -> None:
        self.metrics = tuple(metrics)
        self.confidence = confidence
        self.calibration = calibration
        self.threshold = threshold
        self.n_sim = n_sim
        self.n_calibration_boot = n_calibration_boot
        self.seed = seed

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, ref_proba: npt.ArrayLike, ref_y: npt.ArrayLike, classes: Sequence[Any] | None = None) -> CBPE:
        """Learn the calibration map on reference data whose labels are known."""
        unknown = [m for m in self.metrics if m.split("[", 1)[0] not in CLASSIFICATION_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {list(CLASSIFICATION_METRICS)}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.calibration not in ("auto", "isotonic", "none"):
            raise ValueError(f"calibration must be auto, isotonic or none, got {self.calibration!r}")
        if self.n_sim < 20:
            raise ValueError("n_sim must be at least 20 for a usable interval")
        proba = np.asarray(ref_proba, dtype=np.float64)
        y_raw = np.asarray(ref_y)
        if len(proba) != len(y_raw):
            raise ValueError(f"ref_proba has {len(proba)} rows but ref_y has {len(y_raw)}")
        if proba.ndim == 2 and proba.shape[1] == 2:
            proba = proba[:, 1]
        self.classes_ = list(classes) if classes is not None else sorted(pd.unique(y_raw).tolist())
        self.binary_ = proba.ndim == 1
        k = 2 if self.binary_ else proba.shape[1]
        if len(self.classes_) != k:
            raise ValueError(f"{k} probability column(s) imply {k} classes, got classes {self.classes_}")
        per_class = [m for m in self.metrics if "[" in m]
        names = {f"{m}[{c}]" for m in ("precision", "recall", "f1") for c in self.classes_}
        if per_class and (self.binary_ or not set(per_class) <= names):
            raise ValueError(f"per-class metric(s) {per_class} need a multiclass model; choose from {sorted(names)}")
        try:
            y = class_codes(y_raw, self.classes_)
        except KeyError as exc:
            raise ValueError(f"reference label {exc.args[0]!r} is not among classes {self.classes_}") from exc
        cols = proba[:, None] if self.binary_ else proba
        targets = (y == 1)[:, None] if self.binary_ else np.eye(k, dtype=bool)[y]
        self.calibration_error_raw_ = float(
            np.mean([expected_calibration_error(cols[:, j], targets[:, j]) for j in range(cols.shape[1])])
        )
        self.calibration_error_calibrated_ = float("nan")
        use = self.calibration == "isotonic"
        if self.calibration == "auto":
            held_out = self._cross_fit(cols, targets)
            self.calibration_error_calibrated_ = float(
                np.mean([expected_calibration_error(held_out[:, j], targets[:, j]) for j in range(cols.shape[1])])
            )
            use = self.calibration_error_calibrated_ < self.calibration_error_raw_
        # Keep calibrated probabilities off exact 0/1: an isotonic end step is an estimate, not a certainty.
        self.floor_ = 0.5 / len(y)
        self.calibrators_ = [self._isotonic(cols[:, j], targets[:, j]) for j in range(cols.shape[1])] if use else None
        self.boot_calibrators_: list[list[IsotonicRegression]] = []
        if use:
            rng = np.random.default_rng(self.seed)
            for _ in range(self.n_calibration_boot):
                idx = rng.integers(0, len(y), size=len(y))
                self.boot_calibrators_.append(
                    [self._isotonic(cols[idx, j], targets[idx, j]) for j in range(cols.shape[1])]
                )
        return self

    def _isotonic(self, score: FloatArray, target: npt.NDArray[np.bool_]) -> IsotonicRegression:
        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(score, target.astype(np.float64))

    def _cross_fit(self, cols: FloatArray, targets: npt.NDArray[np.bool_]) -> FloatArray:
        out = np.empty_like(cols)
        folds = KFold(n_splits=2, shuffle=True, random_state=self.seed).split(cols)
        for train, test in folds:
            for j in range(cols.shape[1]):
                out[test, j] = self._isotonic(cols[train, j], targets[train, j]).predict(cols[test, j])
        if cols.shape[1] > 1:
            out = out / np.maximum(out.sum(axis=1, keepdims=True), _EPS)
        return out

    @property
    def calibrated_(self) -> bool:
        """Whether estimates use the isotonic map (False: the raw scores were better calibrated)."""
        return self.calibrators_ is not None

    def calibrate(self, proba: npt.ArrayLike) -> FloatArray:
        """The calibrated probability of each class (binary: of the positive class, 1-D)."""
        return self._apply(self._check_proba(proba), self.calibrators_)

    def _apply(self, p: FloatArray, calibrators: list[IsotonicRegression] | None) -> FloatArray:
        cols = p[:, None] if self.binary_ else p
        if calibrators is not None:
            cols = np.column_stack([c.predict(cols[:, j]) for j, c in enumerate(calibrators)])
        cols = np.clip(cols, self.floor_, 1.0 - self.floor_)
        if self.binary_:
            return np.asarray(cols[:, 0], dtype=np.float64)
        return np.asarray(cols / cols.sum(axis=1, keepdims=True), dtype=np.float64)

    def _check_proba(self, proba: npt.ArrayLike) -> FloatArray:
        if not hasattr(self, "classes_"):
            raise RuntimeError("CBPE is not fitted; call fit(ref_proba, ref_y) first")
        p = np.asarray(proba, dtype=np.float64)
        if self.binary_ and p.ndim == 2 and p.shape[1] == 2:
            p = p[:, 1]
        if (p.ndim == 1) != self.binary_ or (not self.binary_ and p.shape[1] != len(self.classes_)):
            raise ValueError(f"proba of shape {p.shape} does not match the fitted classes {self.classes_}")
        if np.isnan(p).any():
            raise ValueError("proba contains NaN")
        return p

    # -- estimating ------------------------------------------------------------------------
    def estimate(self, proba: npt.ArrayLike, pred: npt.ArrayLike | None = None) -> dict[str, MetricEstimate]:
        """Estimate each metric on one chunk from the model's scores (and its predictions, if any).

        ``pred`` holds predicted labels (in ``classes_``); without it the prediction is the raw
        score at ``threshold`` (binary) or the most probable class (multiclass).
        """
        raw = self._check_proba(proba)
        n = len(raw)
        if n == 0:
            raise ValueError("cannot estimate on an empty chunk")
        cal = self._apply(raw, self.calibrators_)
        draws = np.stack([self._apply(raw, c) for c in self.boot_calibrators_] or [cal])
        hit = self._predicted(raw, pred)
        if self.binary_:
            point = self._expected_binary(raw, cal, hit)
            sims = self._simulate_binary(raw, draws, hit)
        else:
            point = self._expected_multiclass(raw, cal, hit)
            sims = self._simulate_multiclass(raw, draws, hit)
        alpha = (1.0 - self.confidence) / 2.0
        out = {}
        for m in self.metrics:
            col = sims[m][np.isfinite(sims[m])]
            value = point[m]
            if len(col) < self.n_sim // 2 or not np.isfinite(value):
                out[m] = MetricEstimate(float("nan"), float("nan"), float("nan"), n, float("nan"))
                continue
            lo, hi = np.quantile(col, [alpha, 1.0 - alpha])
            out[m] = MetricEstimate(value, float(min(lo, value)), float(max(hi, value)), n, float(np.std(col)))
        return out

    def _predicted(self, raw: FloatArray, pred: npt.ArrayLike | None) -> npt.NDArray[np.int64]:
        if pred is None:
            if self.binary_:
                return (raw >= self.threshold).astype(np.int64)
            return np.argmax(raw, axis=1).astype(np.int64)
        values = np.asarray(pred)
        if len(values) != len(raw):
            raise ValueError(f"pred has {len(values)} rows but proba has {len(raw)}")
        try:
            return class_codes(values, self.classes_)
        except KeyError as exc:
            raise ValueError(f"prediction {exc.args[0]!r} is not among classes {self.classes_}") from exc

    def _needs(self, *names: str) -> bool:
        return bool(set(names) & set(self.metrics))

    def _expected_binary(self, raw: FloatArray, p: FloatArray, hit: npt.NDArray[np.int64]) -> dict[str, float]:
        return expected_binary_metrics(raw, p, hit, ranks=self._needs("roc_auc", "pr_auc"))

    def _draws(self, n: int) -> list[int]:
        # Batches keep the (draws x rows) label matrix near 4M cells whatever the chunk size.
        batch = max(1, min(self.n_sim, 4_000_000 // max(n, 1)))
        sizes = [batch] * (self.n_sim // batch)
        return sizes + ([self.n_sim % batch] if self.n_sim % batch else [])

    def _simulate_binary(self, raw: FloatArray, ps: FloatArray, hit: npt.NDArray[np.int64]) -> dict[str, FloatArray]:
        """Metrics on ``n_sim`` label draws; draw ``d`` uses calibrated probabilities ``ps[d % len(ps)]``."""
        rng = np.random.default_rng(self.seed)
        n, h = len(raw), hit.astype(np.float64)
        ranks = stats.rankdata(raw) if self._needs("roc_auc") else None
        ranked = _RankedScores(raw) if self._needs("pr_auc") else None
        q = np.clip(raw, _EPS, 1 - _EPS)
        loss_pos, loss_neg = -np.log(q), -np.log(1 - q)
        parts: dict[str, list[FloatArray]] = {m: [] for m in self.metrics}
        done = 0
        for b in self._draws(n):
            which = np.arange(done, done + b) % len(ps)
            done += b
            y = (rng.random((b, n)) < ps[which]).astype(np.float64)
            n_pos = y.sum(axis=1)
            tp, pred_pos = y @ h, h.sum()
            cols: dict[str, FloatArray] = {
                "accuracy": (tp + (1 - y) @ (1 - h)) / n,
                "precision": tp / pred_pos if pred_pos > 0 else np.full(b, np.nan),
                "recall": _safe_div(tp, n_pos),
                "f1": _safe_div(2 * tp, pred_pos + n_pos),
                "log_loss": (y @ loss_pos + (1 - y) @ loss_neg) / n,
            }
            if ranks is not None:
                n_neg = n - n_pos
                cols["roc_auc"] = _safe_div(y @ ranks - n_pos * (n_pos + 1) / 2, n_pos * n_neg)
            if ranked is not None:
                cols["pr_auc"] = ranked.auc_ap(ranked.group(y), ranked.group(1.0 - y))[1]
            for m in self.metrics:
                parts[m].append(cols[m])
        return {m: np.concatenate(v) for m, v in parts.items()}

    def _expected_multiclass(self, raw: FloatArray, p: FloatArray, hit: npt.NDArray[np.int64]) -> dict[str, float]:
        labels = [str(c) for c in self.classes_]
        return expected_multiclass_metrics(raw, p, hit, ranks=self._needs("roc_auc", "pr_auc"), labels=labels)

    def _simulate_multiclass(
        self, raw: FloatArray, ps: FloatArray, hit: npt.NDArray[np.int64]
    ) -> dict[str, FloatArray]:
        """Multiclass twin of :meth:`_simulate_binary`; ``ps`` is (calibrations, rows, classes)."""
        rng = np.random.default_rng(self.seed)
        n, k = raw.shape
        cum = np.cumsum(ps, axis=2)
        onehot_pred = np.eye(k)[hit]
        pred_pos = onehot_pred.sum(axis=0)
        ranks = [stats.rankdata(raw[:, j]) for j in range(k)] if self._needs("roc_auc") else None
        ranked = [_RankedScores(raw[:, j]) for j in range(k)] if self._needs("pr_auc") else None
        neg_log_q = -np.log(np.clip(raw / raw.sum(axis=1, keepdims=True), _EPS, 1 - _EPS))
        parts: dict[str, list[FloatArray]] = {m: [] for m in self.metrics}
        done = 0
        for b in self._draws(n * k):
            which = np.arange(done, done + b) % len(ps)
            done += b
            u = rng.random((b, n, 1))
            y = np.minimum((u > cum[which]).sum(axis=2), k - 1)
            ind = [(y == j).astype(np.float64) for j in range(k)]
            tp = np.column_stack([ind[j] @ onehot_pred[:, j] for j in range(k)])
            act_pos = np.column_stack([i.sum(axis=1) for i in ind])
            with np.errstate(invalid="ignore"):
                recall = np.nanmean(np.where(act_pos > 0, tp / np.maximum(act_pos, 1), np.nan), axis=1)
            cols: dict[str, FloatArray] = {
                "accuracy": tp.sum(axis=1) / n,
                "precision": np.mean(np.where(pred_pos > 0, tp / np.maximum(pred_pos, 1), 0.0), axis=1),
                "recall": recall,
                "f1": np.mean(np.nan_to_num(_safe_div(2 * tp, pred_pos + act_pos)), axis=1),
                "log_loss": np.take_along_axis(np.broadcast_to(neg_log_q, (b, n, k)), y[:, :, None], 2)[:, :, 0].mean(
                    axis=1
                ),
            }
            for j, c in enumerate(str(c) for c in self.classes_):
                cols[f"precision[{c}]"] = _safe_div(tp[:, j], np.full(b, pred_pos[j]))
                cols[f"recall[{c}]"] = _safe_div(tp[:, j], act_pos[:, j])
                cols[f"f1[{c}]"] = _safe_div(2 * tp[:, j], pred_pos[j] + act_pos[:, j])
            if ranks is not None:
                pos = act_pos.T
                aucs = [
                    _safe_div(ind[j] @ ranks[j] - pos[j] * (pos[j] + 1) / 2, pos[j] * (n - pos[j])) for j in range(k)
                ]
                cols["roc_auc"] = np.mean(aucs, axis=0)
            if ranked is not None:
                aps = [ranked[j].auc_ap(ranked[j].group(ind[j]), ranked[j].group(1.0 - ind[j]))[1] for j in range(k)]
                cols["pr_auc"] = np.mean(aps, axis=0)
            for m in self.metrics:
                parts[m].append(cols[m])
        return {m: np.concatenate(v) for m, v in parts.items()}


class DirectLossEstimator:
    """Label-free MAE and RMSE for a regression model: a second model predicts the first one's loss.

    On reference data with labels, a gradient-boosted "loss model" learns the absolute error
    (for MAE) and the squared error (for RMSE) from the features and the prediction; on a new
    chunk the estimate is the mean predicted loss. The interval is for the chunk's *realized*
    value: a third model learns how much each row's loss scatters around its prediction, so the
    spread of the chunk mean is ``sqrt(sum of row variances) / n``, widened by the factor by which
    cross-fitted chunks of the reference showed that spread to be too narrow. The loss model's own
    estimation error is added in quadrature: the cross-fitting models are kept, and their
    disagreement on the chunk's mean loss measures how far a model fitted on this much reference
    data can be off.

    Where the chunk moved away from the reference, a loss model that smooths over the first
    model's irregular errors under-predicts them. With ``shift_correction`` (the default) the
    estimate is corrected by importance-weighted validation: a logistic domain classifier weighs
    each reference row by how much more typical it is of the chunk than of the reference, and the
    weighted mean of the cross-fitted residuals (realized loss minus predicted loss) is the loss
    model's bias for a chunk like this one; its standard error joins the interval. On the
    benchmark's covariate shift it lowered the MAE of the estimated MAE from 0.0087 to 0.0071 and
    lifted the 90% interval's coverage of the realized value from 79% to 92% (160 chunks).

    Like CBPE, it sees covariate shift (the loss model knows where the first model is weak) and
    misses concept drift (same inputs, new truth).

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(3000, 2))
    >>> y = X[:, 0] + rng.normal(0, 0.2 + np.abs(X[:, 1]), size=3000)  # noisier where |x1| is large
    >>> dle = DirectLossEstimator(metrics=("mae",), seed=0).fit(X, y, X[:, 0])
    >>> Xc = rng.normal(size=(2000, 2)) + [0.0, 1.5]  # the chunk moved to where the model is weak
    >>> yc = Xc[:, 0] + rng.normal(0, 0.2 + np.abs(Xc[:, 1]), size=2000)
    >>> e = dle.estimate(Xc, Xc[:, 0])["mae"]
    >>> realized = np.mean(np.abs(yc - Xc[:, 0]))
    >>> print(f"estimated {e.estimate:.2f} [{e.lower:.2f}, {e.upper:.2f}], realized {realized:.2f}")
    estimated 1.50 [1.36, 1.63], realized 1.42
    """

    def __init__(
        self,
        metrics: Sequence[str] = REGRESSION_ESTIMABLE,
        confidence: float = 0.9,
        n_folds: int = 3,
        model: RegressorMixin | None = None,
        shift_correction: bool = True,
        max_reference_rows: int = 20_000,
        seed: int = 0,
    ) -> None:
        self.metrics = tuple(metrics)
        self.confidence = confidence
        self.n_folds = n_folds
        self.model = model
        self.shift_correction = shift_correction
        self.max_reference_rows = max_reference_rows
        self.seed = seed

    def _base_model(self) -> RegressorMixin:
        if self.model is not None:
            return clone(self.model)
        # Poisson loss: a non-negative target whose scale grows with its mean, as losses do.
        return HistGradientBoostingRegressor(
            loss="poisson", max_iter=100, learning_rate=0.1, max_leaf_nodes=15, random_state=self.seed
        )

    def _features(self, X: Any, pred: npt.ArrayLike) -> FloatArray:
        if isinstance(X, pd.DataFrame):
            frame = X.copy()
            for col in frame.columns:
                if not pd.api.types.is_numeric_dtype(frame[col]):
                    # Category codes let tree models split on a string column without one-hot blow-up;
                    # the reference's categories fix the codes, so a chunk cannot renumber them.
                    cats = self.categories_.setdefault(col, sorted(frame[col].dropna().astype(str).unique()))
                    codes = pd.Categorical(frame[col].astype(str), categories=cats).codes
                    frame[col] = codes.astype(np.float64)
            arr = frame.to_numpy(dtype=np.float64)
        else:
            arr = np.asarray(X, dtype=np.float64)
            arr = arr[:, None] if arr.ndim == 1 else arr
        p = np.asarray(pred, dtype=np.float64)
        if len(p) != len(arr):
            raise ValueError(f"X has {len(arr)} rows but pred has {len(p)}")
        return np.column_stack([arr, p])

    def fit(self, ref_X: Any, ref_y: npt.ArrayLike, ref_pred: npt.ArrayLike) -> DirectLossEstimator:
        """Learn the loss models (and their scatter) on labeled reference data."""
        unknown = [m for m in self.metrics if m not in REGRESSION_ESTIMABLE]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {list(REGRESSION_ESTIMABLE)}")
        if not 0 < self.confidence < 1 or self.n_folds < 2:
            raise ValueError("confidence must be in (0, 1) and n_folds >= 2")
        self.categories_: dict[str, list[str]] = {}
        feats = self._features(ref_X, ref_pred)
        y = np.asarray(ref_y, dtype=np.float64)
        if len(y) != len(feats):
            raise ValueError(f"ref_y has {len(y)} rows but ref_X has {len(feats)}")
        if len(y) < 20 * self.n_folds:
            raise ValueError(f"need at least {20 * self.n_folds} reference rows, got {len(y)}")
        self.columns_ = list(ref_X.columns) if isinstance(ref_X, pd.DataFrame) else None
        err = y - feats[:, -1]
        self.loss_models_: dict[str, RegressorMixin] = {}
        self.scatter_models_: dict[str, RegressorMixin] = {}
        self.inflation_: dict[str, float] = {}
        self.fold_models_: dict[str, list[RegressorMixin]] = {}
        self.residuals_: dict[str, FloatArray] = {}
        keep = np.random.default_rng(self.seed).permutation(len(y))[: self.max_reference_rows]
        self.reference_features_ = feats[keep]
        self.feature_center_ = feats.mean(axis=0)
        self.feature_scale_ = np.where(feats.std(axis=0) > 0, feats.std(axis=0), 1.0)
        for metric in self.metrics:
            loss = np.abs(err) if metric == "mae" else err**2
            oof, self.fold_models_[metric] = self._cross_predict(feats, loss)
            self.residuals_[metric] = (loss - oof)[keep]
            scatter = (loss - oof) ** 2
            self.loss_models_[metric] = self._base_model().fit(feats, loss)
            self.scatter_models_[metric] = self._base_model().fit(feats, scatter)
            self.inflation_[metric] = self._inflation(loss, oof, self.scatter_models_[metric].predict(feats))
        return self

    def _cross_predict(self, feats: FloatArray, target: FloatArray) -> tuple[FloatArray, list[RegressorMixin]]:
        out = np.empty_like(target)
        models = []
        for train, test in KFold(self.n_folds, shuffle=True, random_state=self.seed).split(feats):
            models.append(self._base_model().fit(feats[train], target[train]))
            out[test] = models[-1].predict(feats[test])
        return out, models

    @staticmethod
    def _inflation(loss: FloatArray, oof: FloatArray, scatter: FloatArray) -> float:
        """How much wider than predicted the chunk-mean error was on reference chunks (at least 1)."""
        # Contiguous chunks keep whatever order the reference came in (often time), and its correlations.
        chunks = np.array_split(np.arange(len(loss)), 20)
        z = [np.mean(loss[c] - oof[c]) / (np.sqrt(np.sum(np.maximum(scatter[c], 0.0))) / len(c)) for c in chunks]
        return float(max(1.0, np.sqrt(np.mean(np.square(z)))))

    def _shift_weights(self, feats: FloatArray) -> FloatArray:
        """Normalised density-ratio weights (chunk over reference) of the kept reference rows."""
        ref = (self.reference_features_ - self.feature_center_) / self.feature_scale_
        cur = (feats - self.feature_center_) / self.feature_scale_
        domain = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
        clf = LogisticRegression(max_iter=500).fit(np.vstack([ref, cur]), domain)
        # The odds of "chunk" over "reference" at a reference row is its density ratio (up to a constant).
        w = np.exp(clf.decision_function(ref))
        return np.asarray(w / w.sum(), dtype=np.float64)

    def estimate(self, X: Any, pred: npt.ArrayLike) -> dict[str, MetricEstimate]:
        """Estimated MAE / RMSE of one chunk, each with an interval for its realized value."""
        if not hasattr(self, "loss_models_"):
            raise RuntimeError("DirectLossEstimator is not fitted; call fit(ref_X, ref_y, ref_pred) first")
        if self.columns_ is not None and isinstance(X, pd.DataFrame):
            missing = [c for c in self.columns_ if c not in X.columns]
            if missing:
                raise ValueError(f"X lacks the reference column(s) {missing}")
            X = X[self.columns_]
        feats = self._features(X, pred)
        n = len(feats)
        if n == 0:
            raise ValueError("cannot estimate on an empty chunk")
        z = two_sided_z(self.confidence)
        weights = self._shift_weights(feats) if self.shift_correction else None
        out = {}
        for metric in self.metrics:
            mean_loss = float(np.mean(np.maximum(self.loss_models_[metric].predict(feats), 0.0)))
            scatter = np.maximum(self.scatter_models_[metric].predict(feats), 0.0)
            sampling_sd = np.sqrt(scatter.sum()) / n * self.inflation_[metric]
            fold_means = [np.mean(np.maximum(m.predict(feats), 0.0)) for m in self.fold_models_[metric]]
            sd = float(np.hypot(sampling_sd, np.std(fold_means, ddof=1)))
            if weights is not None:
                resid = self.residuals_[metric]
                bias = float(weights @ resid)
                bias_se = float(np.sqrt(np.sum(weights**2 * (resid - bias) ** 2)))
                mean_loss, sd = max(mean_loss + bias, 0.0), float(np.hypot(sd, bias_se))
            lo, hi = max(mean_loss - z * sd, 0.0), mean_loss + z * sd
            if metric == "rmse":
                # The interval is built on the mean squared error, then mapped through the square root.
                value, lo, hi = float(np.sqrt(mean_loss)), float(np.sqrt(lo)), float(np.sqrt(hi))
                sd = sd / (2.0 * max(value, _EPS))
            else:
                value = mean_loss
            out[metric] = MetricEstimate(float(value), float(lo), float(hi), n, sd)
        return out
