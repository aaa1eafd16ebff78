"""Multivariate drift by a domain classifier, with a permutation-calibrated threshold.

A classifier learns to tell reference rows from current rows; its out-of-fold ROC AUC is 0.5
when the windows are exchangeable and grows as their joint distributions part, including shifts
that no single column shows (a changed correlation). The threshold is not a fixed AUC: the same
procedure is repeated with the window labels shuffled, and drift is declared when the observed
AUC beats the shuffled ones with a permutation p-value of at most ``alpha``.

The classifier needs rows: pass reference rows, or a profile, which keeps a sample of them
(``build_profile(..., sample_rows=2000)`` by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from detectors.profile import ReferenceProfile


@dataclass(frozen=True)
class MultivariateDrift:
    """Observed AUC, the permutation threshold (the ``1 - alpha`` quantile of the shuffled AUCs),
    the permutation p-value, and the columns that separate the windows most."""

    auc: float
    threshold: float
    p_value: float
    drifted: bool
    n_reference: int
    n_current: int
    null_aucs: tuple[float, ...]
    top_columns: tuple[tuple[str, float], ...]


def domain_classifier_drift(
    reference: pd.DataFrame | ReferenceProfile,
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    max_rows: int = 2000,
    n_permutations: int = 19,
    alpha: float = 0.05,
    n_splits: int = 3,
    random_state: int = 0,
) -> MultivariateDrift:
    """Domain-classifier drift between two windows (sampled down to ``max_rows`` rows each).

    With 19 permutations the smallest possible p-value is 0.05, enough for ``alpha=0.05``;
    raise ``n_permutations`` for smaller ``alpha``.

    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(300, 2))
    >>> ref = pd.DataFrame(a, columns=["u", "v"])
    >>> same = pd.DataFrame(rng.normal(size=(300, 2)), columns=["u", "v"])
    >>> corr = pd.DataFrame({"u": a[:, 0], "v": a[:, 0] + 0.1 * rng.normal(size=300)})  # margins alike
    >>> fast = dict(n_permutations=9, alpha=0.1)
    >>> domain_classifier_drift(ref, same, **fast).drifted, domain_classifier_drift(ref, corr, **fast).drifted
    (False, True)
    """
    if isinstance(reference, ReferenceProfile):
        if reference.row_sample is None:
            raise ValueError("this profile keeps no row sample; build it with sample_rows > 0")
        categorical = tuple(categorical) + tuple(c for c, k in reference.kinds.items() if k == "categorical")
        reference = reference.row_sample
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_permutations < 1 or n_splits < 2 or max_rows < n_splits:
        raise ValueError("need n_permutations >= 1, n_splits >= 2 and max_rows >= n_splits")
    cols = list(reference.columns) if columns is None else list(columns)
    missing = [c for c in cols if c not in reference.columns or c not in current.columns]
    if missing:
        raise ValueError(f"column(s) not in both windows: {', '.join(map(str, missing))}")
    rng = np.random.default_rng(random_state)
    ref = _sample(reference[cols], max_rows, rng)
    cur = _sample(current[cols], max_rows, rng)
    if len(ref) < n_splits or len(cur) < n_splits:
        raise ValueError(f"each window needs at least {n_splits} rows, got {len(ref)} and {len(cur)}")
    x, is_cat = _encode(pd.concat([ref, cur], ignore_index=True), set(categorical))
    y = np.r_[np.zeros(len(ref), dtype=int), np.ones(len(cur), dtype=int)]
    auc, importances = _oof_auc(x, y, is_cat, n_splits, random_state)
    null = []
    for i in range(n_permutations):
        null_auc, _ = _oof_auc(x, rng.permutation(y), is_cat, n_splits, random_state + 1 + i)
        null.append(null_auc)
    null_arr = np.array(null)
    p_value = float((1 + np.sum(null_arr >= auc)) / (1 + n_permutations))
    threshold = float(np.quantile(null_arr, 1 - alpha))
    top = sorted(zip(cols, importances.tolist(), strict=True), key=lambda t: -t[1])[:5]
    return MultivariateDrift(float(auc), threshold, p_value, bool(p_value <= alpha), len(ref), len(cur),
                             tuple(float(v) for v in null), tuple(top))  # fmt: skip


def _sample(df: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(df) <= n:
        return df.reset_index(drop=True)
    return df.iloc[np.sort(rng.choice(len(df), n, replace=False))].reset_index(drop=True)


def _encode(df: pd.DataFrame, categorical: set[str]) -> tuple[np.ndarray, np.ndarray]:
    """Numbers as floats (NaN kept: the model handles it), everything else as category codes
    shared by both windows, so a category means the same on each side."""
    out = np.empty((len(df), df.shape[1]), dtype=np.float64)
    is_cat = np.zeros(df.shape[1], dtype=bool)
    for j, col in enumerate(df.columns):
        s = df[col]
        numeric = pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype)
        if numeric and col not in categorical:
            out[:, j] = s.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            codes, _ = pd.factorize(s.astype(str).where(s.notna()), sort=True)
            # the model's native categorical support takes at most 255 levels; beyond, use codes as numbers
            out[:, j] = np.where(codes < 0, np.nan, codes)
            is_cat[j] = codes.max() < 255
    return out, is_cat


def _oof_auc(x: np.ndarray, y: np.ndarray, is_cat: np.ndarray, n_splits: int, seed: int) -> tuple[float, np.ndarray]:
    """Out-of-fold AUC and a split-count importance per column (how often trees used it)."""
    pred = np.empty(len(y), dtype=np.float64)
    used = np.zeros(x.shape[1])
    # one thread: the fits are small, and OpenMP threads spinning on a shared machine cost far more
    # than they save
    with threadpool_limits(1, user_api="openmp"):
        _fit_folds(x, y, is_cat, n_splits, seed, pred, used)
    total = used.sum()
    return float(roc_auc_score(y, pred)), used / total if total else used


def _fit_folds(
    x: np.ndarray, y: np.ndarray, is_cat: np.ndarray, n_splits: int, seed: int, pred: np.ndarray, used: np.ndarray
) -> None:
    for train, test in StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(x, y):
        model = HistGradientBoostingClassifier(
            max_iter=30, max_depth=3, learning_rate=0.2, categorical_features=is_cat if is_cat.any() else None,
            random_state=seed,
        )  # fmt: skip
        model.fit(x[train], y[train])
        pred[test] = model.predict_proba(x[test])[:, 1]
        for predictors in model._predictors:
            for tree in predictors:
                nodes = tree.nodes[tree.nodes["is_leaf"] == 0]
                used += np.bincount(nodes["feature_idx"], minlength=x.shape[1])
