"""Realized performance on a window whose labels have (partly) arrived, with bootstrap intervals.

Labels arrive late and not all at once, so a window is judged on the rows that have a label,
and every metric carries a percentile-bootstrap interval. Below ``min_samples`` labeled rows a
metric is reported as ``"insufficient"`` with no number: a falsely precise figure on 30 rows
would trigger (or block) a retrain on noise.

The bootstrap resamples with multinomial weights, so every metric is a weighted sum computed for
all replicates at once (one sort per score column, not one per replicate); the point value is the
same code with unit weights, so value and interval can never disagree on a definition.

Classification metrics: ``accuracy``, ``precision``, ``recall``, ``f1`` (binary: of the positive
class; multiclass: macro average plus ``precision[c]``, ``recall[c]``, ``f1[c]`` per class), and,
when probabilities are given, ``roc_auc`` (multiclass: one-vs-rest macro), ``pr_auc`` (average
precision) and ``log_loss``. Regression: ``mae``, ``rmse``, ``mape``, ``r2``.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.uniform(size=1000)
>>> y = (rng.uniform(size=1000) < p).astype(int)
>>> rep = realized_performance(y, proba=p, n_boot=100, seed=0)
>>> m = rep.metrics["accuracy"]
>>> print(f"{m.value:.3f} [{m.lower:.3f}, {m.upper:.3f}] n={m.n} {m.status}")
0.750 [0.727, 0.771] n=1000 ok
>>> rep.metrics["roc_auc"].value > 0.8
True
>>> realized_performance(y[:50], proba=p[:50]).metrics["accuracy"].status
'insufficient'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

Task = Literal["classification", "regression"]
Status = Literal["ok", "insufficient"]
FloatArray = npt.NDArray[np.float64]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "log_loss")
REGRESSION_METRICS = ("mae", "rmse", "mape", "r2")
PROBA_METRICS = frozenset({"roc_auc", "pr_auc", "log_loss"})
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "mape"})

# Probabilities are clipped like scikit-learn's log_loss so one confident miss is large, not infinite.
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class MetricValue:
    """One realized metric: the value on the labeled rows and its bootstrap interval."""

    value: float | None
    lower: float | None
    upper: float | None
    n: int
    status: Status


@dataclass(frozen=True)
class PerformanceReport:
    """Realized metrics of one window.

    ``coverage`` is the labeled share of the window (``n_labeled / n_total``); a low coverage
    means the figures describe the rows whose labels came back first, which may not be a random
    sample of the window.
    """

    task: Task
    metrics: dict[str, MetricValue]
    n_labeled: int
    n_total: int
    coverage: float
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "task": self.task,
            "n_labeled": self.n_labeled,
            "n_total": self.n_total,
            "coverage": self.coverage,
            "confidence": self.confidence,
            "metrics": {
                name: {"value": m.value, "lower": m.lower, "upper": m.upper, "n": m.n, "status": m.status}
                for name, m in self.metrics.items()
            },
        }


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` (per-class names included) is an improvement."""
    return metric.split("[", 1)[0] not in LOWER_IS_BETTER


def realized_performance(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike | None = None,
    proba: npt.ArrayLike | None = None,
    task: Task = "classification",
    metrics: Sequence[str] | None = None,
    n_boot: int = 200,
    confidence: float = 0.9,
    min_samples: int = 200,
    seed: int = 0,
    classes: Sequence[Any] | None = None,
    n_total: int | None = None,
) -> PerformanceReport:
    """Metrics on the labeled rows of a window, each with a bootstrap interval.

    Rows whose label is missing (NaN/None: not arrived yet) are left out and count against
    ``coverage``. ``n_total`` is the window size when ``y_true`` holds only the labeled rows.
    Binary ``proba`` is the probability of the positive class (the last of ``classes``), 1-D;
    multiclass ``proba`` is 2-D with one column per class in ``classes`` order. Without ``y_pred``
    the prediction is ``proba >= 0.5`` (binary) or the most probable class (multiclass).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_boot < 0 or min_samples < 1:
        raise ValueError("n_boot must be >= 0 and min_samples >= 1")
    if task == "classification" and (n_labeled := _count_labeled(y_true, y_pred, proba)) < min_samples:
        # Too few labels: report "insufficient" without resolving classes, which a window with
        # no labels yet (and one predicted class) could not do.
        total = len(_as_1d(y_true)) if n_total is None else int(n_total)
        allowed = [m for m in CLASSIFICATION_METRICS if proba is not None or m not in PROBA_METRICS]
        names = list(metrics) if metrics is not None else allowed
        _check_metrics(names, names, CLASSIFICATION_METRICS)
        out = {name: MetricValue(None, None, None, n_labeled, "insufficient") for name in names}
        return PerformanceReport(task, out, n_labeled, total, n_labeled / total if total else 0.0, confidence)
    if task == "classification":
        rows, prepared = _prepare_classification(y_true, y_pred, proba, classes, metrics)
    elif task == "regression":
        rows, prepared = _prepare_regression(y_true, y_pred, metrics)
    else:
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    n_rows = len(rows)
    n_labeled = int(rows.sum())
    total = n_rows if n_total is None else int(n_total)
    if total < n_labeled:
        raise ValueError(f"n_total={total} is smaller than the {n_labeled} labeled rows")
    coverage = n_labeled / total if total else 0.0
    names, compute = prepared

    if n_labeled < min_samples:
        out = {name: MetricValue(None, None, None, n_labeled, "insufficient") for name in names}
        return PerformanceReport(task, out, n_labeled, total, coverage, confidence)

    point = compute(np.ones((1, n_labeled)))
    boot = _bootstrap(compute, n_labeled, n_boot, seed, len(names))
    alpha = (1.0 - confidence) / 2.0
    out = {}
    for j, name in enumerate(names):
        value = float(point[0, j])
        if not np.isfinite(value):
            out[name] = MetricValue(None, None, None, n_labeled, "insufficient")
            continue
        col = boot[:, j][np.isfinite(boot[:, j])]
        if len(col) < max(2, n_boot // 2):
            # Half the replicates undefined (e.g. a class missing from most resamples): no honest interval.
            out[name] = MetricValue(value, None, None, n_labeled, "insufficient")
            continue
        lo, hi = np.quantile(col, [alpha, 1.0 - alpha])
        out[name] = MetricValue(value, float(min(lo, value)), float(max(hi, value)), n_labeled, "ok")
    return PerformanceReport(task, out, n_labeled, total, coverage, confidence)


def baseline_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike | None = None,
    proba: npt.ArrayLike | None = None,
    task: Task = "classification",
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Point values of every metric the inputs allow: a model version's baseline.

    >>> baseline_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], task="regression")["mae"]
    0.3333333333333333
    """
    rep = realized_performance(y_true, y_pred, proba, task=task, n_boot=0, min_samples=1, classes=classes)
    return {name: m.value for name, m in rep.metrics.items() if m.value is not None}


def join_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    id_col: str = "id",
    target_col: str = "target",
    as_of: pd.Timestamp | None = None,
    label_time_col: str | None = None,
    prediction_time_col: str | None = None,
    label_delay: timedelta | None = None,
) -> pd.DataFrame:
    """Attach the labels that have arrived by ``as_of`` to the predictions, by id.

    A label counts when its own timestamp (``label_time_col``) is at or before ``as_of``, and,
    when ``label_delay`` is set, when the prediction is at least that old (labels for younger
    predictions are not expected yet, so they are left out even if a few came early: early
    labels are usually the unusual cases). Predictions without a usable label keep a missing
    target, so :func:`realized_performance` counts them in the window but not in the metric.
    Duplicate label ids keep the latest label.

    >>> preds = pd.DataFrame({"id": [1, 2, 3], "pred": [0, 1, 1]})
    >>> labs = pd.DataFrame({"id": [1, 3], "target": [0, 0]})
    >>> join_labels(preds, labs)["target"].tolist()
    [0.0, nan, 0.0]
    """
    for frame, cols, what in (
        (predictions, [id_col] + ([prediction_time_col] if prediction_time_col else []), "predictions"),
        (labels, [id_col, target_col] + ([label_time_col] if label_time_col else []), "labels"),
    ):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise KeyError(f"{what} lack column(s) {missing}")
    lab = labels
    if label_time_col is not None:
        lab = lab.sort_values(label_time_col)
        if as_of is not None:
            lab = lab[lab[label_time_col] <= as_of]
    lab = lab.drop_duplicates(id_col, keep="last")[[id_col, target_col]]
    preds = predictions.drop(columns=[target_col], errors="ignore")
    joined = preds.merge(lab, on=id_col, how="left", validate="many_to_one")
    if label_delay is not None:
        if prediction_time_col is None or as_of is None:
            raise ValueError("label_delay needs prediction_time_col and as_of")
        not_due = joined[prediction_time_col] > as_of - label_delay
        joined.loc[not_due, target_col] = np.nan
    return joined


# ---------------------------------------------------------------------------------------------
# Weighted metric kernels. Each takes a (b, n) weight matrix and returns (b, n_metrics).

Compute = Callable[[FloatArray], FloatArray]


def _bootstrap(compute: Compute, n: int, n_boot: int, seed: int, n_metrics: int) -> FloatArray:
    if n_boot == 0:
        return np.empty((0, n_metrics))
    rng = np.random.default_rng(seed)
    # Bound the weight matrix to ~4M cells so a 1M-row window does not allocate gigabytes.
    batch = max(1, min(n_boot, 4_000_000 // max(n, 1)))
    parts = []
    done = 0
    while done < n_boot:
        b = min(batch, n_boot - done)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        weights = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        parts.append(compute(weights))
        done += b
    return np.vstack(parts)


def _safe_div(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


class _RankedScores:
    """Scores sorted once (descending), grouped by tied value, for ROC AUC and average precision.

    The positives may be 0/1 labels, bootstrap-weighted labels, simulated labels or fractional
    (probability) labels: the kernels only need per-group sums of positive and negative mass.
    """

    def __init__(self, score: FloatArray) -> None:
        self.order = np.argsort(-score, kind="mergesort")
        s = score[self.order]
        self.starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])

    def group(self, mass: FloatArray) -> FloatArray:
        """Sum (b, n) per-row mass into (b, n_groups) in descending score order."""
        return np.add.reduceat(mass[:, self.order], self.starts, axis=1)

    @staticmethod
    def auc_ap(wp: FloatArray, wn: FloatArray, self_pairs: FloatArray | None = None) -> tuple[FloatArray, FloatArray]:
        """ROC AUC and average precision from grouped positive and negative mass.

        ``self_pairs`` (fractional labels only) removes each row's pairing with itself, which a
        real label can never form, so the ratio matches the expected AUC of drawn labels.
        """
        tp = np.cumsum(wp, axis=1)
        fp = np.cumsum(wn, axis=1)
        p_tot, n_tot = tp[:, -1], fp[:, -1]
        # A positive in group g outranks every negative in later groups; ties count half.
        num = np.sum(wp * (n_tot[:, None] - fp + 0.5 * wn), axis=1)
        den = p_tot * n_tot
        if self_pairs is not None:
            num, den = num - 0.5 * self_pairs, den - self_pairs
        auc = np.where(n_tot > 0, _safe_div(num, den), np.nan)
        precision = _safe_div(tp, tp + fp)
        ap = _safe_div(np.sum(wp * np.nan_to_num(precision), axis=1), p_tot)
        return auc, ap

    def weighted(self, w: FloatArray, positive: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Bootstrap: fixed labels, one weight row per replicate."""
        return self.auc_ap(self.group(w * positive), self.group(w * (1.0 - positive)))


def _count_labeled(y_true: npt.ArrayLike, y_pred: npt.ArrayLike | None, proba: npt.ArrayLike | None) -> int:
    """Rows with a label, a prediction (when given) and scores (when given)."""
    rows = ~_missing(_as_1d(y_true))
    if y_pred is not None:
        pred = _as_1d(y_pred)
        if len(pred) != len(rows):
            raise ValueError(f"y_true has {len(rows)} rows but y_pred has {len(pred)}")
        rows &= ~_missing(pred)
    if proba is not None:
        p = np.asarray(proba, dtype=np.float64)
        if len(p) != len(rows):
            raise ValueError(f"y_true has {len(rows)} rows but proba has {len(p)}")
        rows &= ~np.isnan(p.reshape(len(p), -1)).any(axis=1)
    return int(rows.sum())


def class_codes(values: npt.ArrayLike, classes: Sequence[Any]) -> npt.NDArray[np.int64]:
    """Each value's position in ``classes``, as ``{c: i}[value]`` would give it: a KeyError names
    the first value that is not among them.

    Looked up through a pandas index (a dict lookup per row cost about half a millisecond per
    10,000 rows); where that misses (a value equal to a class but of another type, such as
    ``True`` for ``1``), the dict decides.
    """
    arr = np.asarray(values)
    found = _integer_codes(arr, classes)
    if found is not None:
        return found
    try:
        idx = pd.Index(list(classes)).get_indexer(arr)
    except (TypeError, ValueError):
        idx = None
    if idx is not None and (len(idx) == 0 or idx.min() >= 0):
        return idx.astype(np.int64, copy=False)
    code = {c: i for i, c in enumerate(classes)}
    return np.array([code[v] for v in arr.tolist()], dtype=np.int64)


def _integer_codes(arr: npt.NDArray[Any], classes: Sequence[Any]) -> npt.NDArray[np.int64] | None:
    """:func:`class_codes` of integers among distinct integer classes (a classifier's 0/1), by
    binary search: a tenth of a hash lookup's cost. None when that does not apply or a value is
    not a class (the caller then looks them up, and names a missing one)."""
    known = np.asarray(classes)
    if known.ndim != 1 or not len(known) or np.result_type(arr.dtype, known.dtype).kind not in "iu":
        return None  # not integers on both sides (uint64 with int64 would compare as floats)
    order = np.argsort(known, kind="stable")
    ordered = known[order]
    if len(ordered) > 1 and not bool(np.all(ordered[1:] > ordered[:-1])):
        return None  # repeated classes: the dict's rule (the last one) decides
    at = np.minimum(np.searchsorted(ordered, arr), len(ordered) - 1)
    if not bool(np.all(ordered[at] == arr)):
        return None
    return order[at].astype(np.int64, copy=False)


def _as_1d(a: npt.ArrayLike) -> npt.NDArray[Any]:
    arr = np.asarray(a)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D array, got shape {arr.shape}")
    return arr


def _missing(a: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    return np.asarray(pd.isna(a), dtype=bool)


def _check_metrics(requested: Sequence[str] | None, available: Sequence[str], allowed: Sequence[str]) -> list[str]:
    if requested is None:
        return list(available)
    unknown = [m for m in requested if m.split("[", 1)[0] not in allowed]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(allowed)}")
    impossible = [m for m in requested if m not in available]
    if impossible:
        raise ValueError(f"metric(s) {impossible} need inputs that were not given (probabilities?)")
    return list(requested)


def _prepare_regression(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike | None, metrics: Sequence[str] | None
) -> tuple[npt.NDArray[np.bool_], tuple[list[str], Compute]]:
    if y_pred is None:
        raise ValueError("regression needs y_pred")
    y = _as_1d(y_true).astype(np.float64)
    pred = _as_1d(y_pred).astype(np.float64)
    if len(y) != len(pred):
        raise ValueError(f"y_true has {len(y)} rows but y_pred has {len(pred)}")
    rows = ~(np.isnan(y) | np.isnan(pred))
    y, pred = y[rows], pred[rows]
    names = _check_metrics(metrics, REGRESSION_METRICS, REGRESSION_METRICS)
    err = y - pred
    abs_err, sq_err = np.abs(err), err**2
    ape = abs_err / np.maximum(np.abs(y), _EPS)

    def compute(w: FloatArray) -> FloatArray:
        tot = w.sum(axis=1)
        cols: dict[str, FloatArray] = {
            "mae": w @ abs_err / tot,
            "rmse": np.sqrt(w @ sq_err / tot),
            "mape": w @ ape / tot,
        }
        if "r2" in names:
            mean_y = w @ y / tot
            ss_tot = np.sum(w * (y[None, :] - mean_y[:, None]) ** 2, axis=1)
            cols["r2"] = 1.0 - _safe_div(w @ sq_err, ss_tot)
        return np.column_stack([cols[m] for m in names])

    return rows, (names, compute)


def _prepare_classification(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike | None,
    proba: npt.ArrayLike | None,
    classes: Sequence[Any] | None,
    metrics: Sequence[str] | None,
) -> tuple[npt.NDArray[np.bool_], tuple[list[str], Compute]]:
    y_raw = _as_1d(y_true)
    rows = ~_missing(y_raw)
    p_all = None if proba is None else np.asarray(proba, dtype=np.float64)
    if p_all is not None:
        if len(p_all) != len(y_raw):
            raise ValueError(f"y_true has {len(y_raw)} rows but proba has {len(p_all)}")
        rows &= ~np.isnan(p_all.reshape(len(p_all), -1)).any(axis=1)
    pred_raw = None
    if y_pred is not None:
        pred_raw = _as_1d(y_pred)
        if len(pred_raw) != len(y_raw):
            raise ValueError(f"y_true has {len(y_raw)} rows but y_pred has {len(pred_raw)}")
        rows &= ~_missing(pred_raw)
    if pred_raw is None and p_all is None:
        raise ValueError("classification needs y_pred or proba")

    y_lab = y_raw[rows]
    if p_all is not None and p_all.ndim == 2 and p_all.shape[1] == 2:
        p_all = p_all[:, 1]
    binary = p_all.ndim == 1 if p_all is not None else None
    if classes is None:
        seen = set(pd.unique(y_lab).tolist())
        if pred_raw is not None:
            seen |= set(pd.unique(pred_raw[rows]).tolist())
        if binary is not False and len(seen) < 2 and seen <= {0, 1}:
            # A window whose labels are all one class still has two classes: 0/1 scores imply them.
            seen |= {0, 1}
        cls = sorted(seen)
    else:
        cls = list(classes)
    if binary is None:
        binary = len(cls) <= 2
    if p_all is not None and p_all.ndim == 2 and p_all.shape[1] != len(cls):
        raise ValueError(f"proba has {p_all.shape[1]} columns but there are {len(cls)} classes {cls}")
    if binary and len(cls) != 2:
        raise ValueError(f"binary classification needs 2 classes, got {cls}; pass classes=")
    try:
        y = class_codes(y_lab, cls)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not among classes {cls}") from exc
    p = None if p_all is None else p_all[rows]
    if pred_raw is not None:
        try:
            pred = class_codes(pred_raw[rows], cls)
        except KeyError as exc:
            raise ValueError(f"prediction {exc.args[0]!r} is not among classes {cls}") from exc
    elif binary:
        assert p is not None
        pred = (p >= 0.5).astype(np.int64)
    else:
        assert p is not None
        pred = np.argmax(p, axis=1)

    available = [m for m in CLASSIFICATION_METRICS if p is not None or m not in PROBA_METRICS]
    if not binary:
        available += [f"{m}[{c}]" for m in ("precision", "recall", "f1") for c in cls]
    names = _check_metrics(metrics, available, CLASSIFICATION_METRICS)
    if binary:
        return rows, (names, _binary_kernel(y, pred, p, names))
    return rows, (names, _multiclass_kernel(y, pred, p, len(cls), [str(c) for c in cls], names))


def _binary_kernel(
    y: npt.NDArray[np.int64], pred: npt.NDArray[np.int64], p: FloatArray | None, names: list[str]
) -> Compute:
    pos, hit = (y == 1).astype(np.float64), (pred == 1).astype(np.float64)
    correct = (y == pred).astype(np.float64)
    ranked = _RankedScores(p) if p is not None and {"roc_auc", "pr_auc"} & set(names) else None
    loss = None
    if p is not None:
        q = np.clip(p, _EPS, 1 - _EPS)
        loss = -(pos * np.log(q) + (1 - pos) * np.log(1 - q))

    def compute(w: FloatArray) -> FloatArray:
        tot = w.sum(axis=1)
        tp, pred_pos, act_pos = w @ (pos * hit), w @ hit, w @ pos
        cols = {
            "accuracy": w @ correct / tot,
            "precision": _safe_div(tp, pred_pos),
            "recall": _safe_div(tp, act_pos),
            "f1": _safe_div(2 * tp, pred_pos + act_pos),
        }
        if ranked is not None:
            cols["roc_auc"], cols["pr_auc"] = ranked.weighted(w, pos)
        if loss is not None:
            cols["log_loss"] = w @ loss / tot
        return np.column_stack([cols[m] for m in names])

    return compute


def _multiclass_kernel(
    y: npt.NDArray[np.int64],
    pred: npt.NDArray[np.int64],
    p: FloatArray | None,
    k: int,
    labels: list[str],
    names: list[str],
) -> Compute:
    onehot_y = np.eye(k)[y]
    onehot_pred = np.eye(k)[pred]
    correct = (y == pred).astype(np.float64)
    tp_rows = onehot_y * onehot_pred
    ranked = (
        [_RankedScores(p[:, j]) for j in range(k)] if p is not None and {"roc_auc", "pr_auc"} & set(names) else None
    )
    loss = None
    if p is not None:
        q = np.clip(p / p.sum(axis=1, keepdims=True), _EPS, 1 - _EPS)
        loss = -np.log(q[np.arange(len(y)), y])

    def compute(w: FloatArray) -> FloatArray:
        tot = w.sum(axis=1)
        tp, pred_pos, act_pos = w @ tp_rows, w @ onehot_pred, w @ onehot_y
        prec = np.nan_to_num(_safe_div(tp, pred_pos))
        rec = _safe_div(tp, act_pos)
        f1 = np.nan_to_num(_safe_div(2 * tp, pred_pos + act_pos))
        # Like scikit-learn's macro average: a class never predicted has precision 0; recall is over present classes.
        cols: dict[str, FloatArray] = {
            "accuracy": w @ correct / tot,
            "precision": prec.mean(axis=1),
            "recall": np.nanmean(np.where(act_pos > 0, rec, np.nan), axis=1),
            "f1": f1.mean(axis=1),
        }
        for j, c in enumerate(labels):
            cols[f"precision[{c}]"], cols[f"recall[{c}]"], cols[f"f1[{c}]"] = prec[:, j], rec[:, j], f1[:, j]
        if ranked is not None:
            per = [r.weighted(w, onehot_y[:, j]) for j, r in enumerate(ranked)]
            cols["roc_auc"] = np.mean([a for a, _ in per], axis=0)
            cols["pr_auc"] = np.mean([ap for _, ap in per], axis=0)
        if loss is not None:
            cols["log_loss"] = w @ loss / tot
        return np.column_stack([cols[m] for m in names])

    return compute
