"""Drift of embeddings: evidently's four methods, run from a stored profile.

An embedding is a Parquet list (or fixed-size list) column of floats, or a named group of numeric
columns. :func:`build_embedding_profile` keeps, once per reference, what each method needs, so a
check never reads the raw reference:

- ``model`` (evidently's default): a domain classifier (``SGDClassifier(loss="log_loss",
  random_state=42)`` on a seeded 50/50 split of the two windows); the score is its ROC AUC on the
  held-out half, drift above 0.55, or, with ``bootstrap``, above the ``quantile_probability``
  (0.95) quantile of 100 random classifiers' AUCs. Evidently switches ``bootstrap`` on by default
  when the reference has fewer than 1,000 rows; so does this module. Needs rows: the profile's
  row sample.
- ``ratio``: the share of components whose normed Wasserstein distance (distance over the
  reference's standard deviation) reaches 0.1 (``component_stattest``, any numerical test, and
  ``component_stattest_threshold``); drift above 0.2. Needs each component's distribution: the
  profile keeps it exactly, or as a binned sketch for many distinct values.
- ``distance``: the euclidean (or ``cosine``, ``cityblock``, ``chebyshev``) distance between the
  two windows' mean vectors; drift above 0.2. Needs the reference's mean (exact). With
  ``bootstrap``, the threshold is the 0.95 quantile of 100 distances between resampled means of
  reference rows (evidently's procedure, on the row sample).
- ``mmd``: the unbiased squared maximum mean discrepancy with an RBF kernel whose bandwidth is the
  median euclidean distance between 1,000 reference rows and 1,000 current rows (both drawn as
  ``DataFrame.sample(1000, random_state=0)`` draws them); drift above 0.015, or, with
  ``bootstrap``, above the 0.05 quantile of 100 resampled reference-only statistics. Needs rows:
  the row sample, which holds evidently's 1,000 bandwidth rows.

Where this differs from evidently, and why: ``model`` and ``mmd`` (and the bootstraps) run on
the profile's row sample (``sample_rows``, 2,000 by default) and on a seeded sample of as many
current rows, instead of every row; evidently's MMD builds an (m + n)² kernel matrix, which at
100,000 rows per window needs 320 GB. When both windows have at most ``sample_rows`` rows every
method sees exactly evidently's data and gives its score. ``ratio`` on sketched components moves
each component's distance by less than a bin width. ``pca_components`` is not supported.

Errors: ``ValueError`` for an embedding spec that matches no column, vectors of unequal length,
or options that do not fit.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.spatial import distance as scipy_distance

from detectors.domain import random_aucs
from detectors.options import (
    BANDWIDTH_ROWS,
    DEFAULT_MAX_EXACT,
    DEFAULT_SAMPLE_ROWS,
    DEFAULT_SKETCH_BINS,
    N_BOOTSTRAP,
    EmbeddingMethod,
    EmbeddingOptions,
)
from detectors.sketch import reduce_like, reduce_numbers
from detectors.stattests import Sample, get_stattest

_DISTANCES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "euclidean": scipy_distance.euclidean,
    "cosine": scipy_distance.cosine,
    "cityblock": scipy_distance.cityblock,
    "chebyshev": scipy_distance.chebyshev,
}


# reading embeddings from a frame


def resolve_columns(columns: Sequence[Any], spec: str | Sequence[str], name: str = "embedding") -> tuple[str, ...]:
    """The columns an embedding spec names: a list of columns, a comma-separated list, a prefix glob
    such as ``emb_*`` (matches in the frame's order), or one column (a list column).

    >>> resolve_columns(["id", "emb_0", "emb_1", "v"], "emb_*"), resolve_columns(["a", "b", "v"], "v")
    (('emb_0', 'emb_1'), ('v',))
    >>> resolve_columns(["a"], "b,c", "text_emb")
    Traceback (most recent call last):
    ...
    ValueError: embedding 'text_emb': column(s) not in the data: b, c
    """
    present = [str(c) for c in columns]
    if isinstance(spec, str):
        if any(ch in spec for ch in "*?["):
            found = tuple(c for c in present if fnmatch.fnmatchcase(c, spec))
            if not found:
                raise ValueError(f"embedding {name!r}: no column matches {spec!r}")
            return found
        names = [part.strip() for part in spec.split(",") if part.strip()]
    else:
        names = [str(c) for c in spec]
    if not names:
        raise ValueError(f"embedding {name!r}: no columns given")
    missing = [c for c in names if c not in present]
    if missing:
        raise ValueError(f"embedding {name!r}: column(s) not in the data: {', '.join(missing)}")
    return tuple(names)


def embedding_matrix(frame: pd.DataFrame | Any, columns: Sequence[str], name: str = "embedding") -> np.ndarray:
    """The embedding's vectors as an (n, d) float array; a row with a null or non-finite value is
    dropped (``len(frame) - len(result)`` rows). One column holding lists (or arrays) of floats is
    a list column; one numeric column is a one-dimensional embedding.

    Components given as columns come back column-major (each component contiguous, as the ratio
    method reads them) and stay float32 when they all are: a 100,000 x 384 window is 150 MB so,
    300 MB as float64.

    >>> embedding_matrix(pd.DataFrame({"v": [[1.0, 2.0], None, [3.0, float("nan")]]}), ["v"]).tolist()
    [[1.0, 2.0]]
    """
    if len(columns) == 1 and not pd.api.types.is_numeric_dtype(frame[columns[0]].dtype):
        matrix = _stack_lists(frame[columns[0]], f"embedding {name!r}, column {columns[0]!r}")
    else:
        series = [frame[c] for c in columns]
        for c, s in zip(columns, series, strict=True):
            if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
                raise ValueError(f"embedding {name!r}: column {c!r} is not numeric ({s.dtype})")
        single = all(s.dtype == np.float32 for s in series)
        matrix = np.empty((len(frame), len(series)), dtype=np.float32 if single else np.float64, order="F")
        for j, s in enumerate(series):
            # nullable dtypes carry pd.NA, which only a float conversion with na_value turns into NaN
            plain = isinstance(s.dtype, np.dtype)
            matrix[:, j] = s.to_numpy() if plain else s.to_numpy(dtype=np.float64, na_value=np.nan)
    keep = np.isfinite(matrix).all(axis=1)
    return matrix if keep.all() else matrix[keep]


def looks_like_vectors(series: pd.Series) -> bool:
    """A column of lists or arrays of numbers (a Parquet list column read by pandas), judged on its
    first non-null value.

    >>> looks_like_vectors(pd.Series([None, [0.1, 0.2]])), looks_like_vectors(pd.Series(["a b"]))
    (True, False)
    """
    if not pd.api.types.is_object_dtype(series.dtype):
        return False
    # the head first: dropping the nulls of a long column copies it
    present = series.iloc[:1024].dropna().iloc[:1]
    if len(present) == 0:
        present = series.dropna().iloc[:1]
    if len(present) == 0 or not isinstance(present.iloc[0], list | tuple | np.ndarray):
        return False
    first = np.asarray(present.iloc[0])
    return first.ndim == 1 and len(first) > 0 and np.issubdtype(first.dtype, np.number)


def _stack_lists(series: pd.Series, where: str) -> np.ndarray:
    values = series.to_numpy(dtype=object)
    rows = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not rows:
        return np.empty((0, 0))
    odd = next((v for v in rows if not isinstance(v, list | tuple | np.ndarray)), None)
    if odd is not None:
        raise ValueError(f"{where}: holds {type(odd).__name__} values, not lists of numbers")
    lengths = {len(v) for v in rows}
    if len(lengths) > 1:
        raise ValueError(f"{where}: vectors of different lengths {sorted(lengths)[:5]}")
    try:
        matrix = np.asarray(np.stack([np.asarray(v, dtype=np.float64) for v in rows]), dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: holds values that are not numbers") from None
    if len(rows) < len(values):  # the dropped nulls, as NaN rows, so the row count stays comparable
        full = np.full((len(values), matrix.shape[1]), np.nan)
        present = np.array([v is not None and not (isinstance(v, float) and math.isnan(v)) for v in values])
        full[present] = matrix
        return full
    return matrix


# the profile


@dataclass(frozen=True, eq=False)
class EmbeddingProfile:
    """What the four methods need of a reference embedding.

    ``sample`` holds whole reference rows in reference order (every row when the reference has at
    most ``sample_rows``); ``bandwidth`` the positions in it of the 1,000 rows evidently's MMD takes
    its bandwidth from. ``components[j]`` is component j's distribution, exact when
    ``isnan(sketch_lo[j])``, else binned on ``sketch_bins`` bins between ``sketch_lo[j]`` and
    ``sketch_hi[j]``.
    """

    name: str
    columns: tuple[str, ...]
    n_rows: int
    n_null: int
    mean: np.ndarray
    components: tuple[Sample, ...]
    sketch_lo: np.ndarray
    sketch_hi: np.ndarray
    sketch_bins: int
    sample: np.ndarray
    bandwidth: np.ndarray

    @property
    def dim(self) -> int:
        return len(self.mean)

    @property
    def whole(self) -> bool:
        """The row sample is the whole reference."""
        return len(self.sample) == self.n_rows


def pandas_sample_index(n: int, k: int, random_state: int = 0) -> np.ndarray:
    """The rows ``DataFrame.sample(k, random_state=random_state)`` takes of an n-row frame, in its order.

    >>> frame = pd.DataFrame({"x": range(50)})
    >>> pandas_sample_index(50, 7).tolist() == frame.sample(7, random_state=0).index.tolist()
    True
    """
    return np.random.RandomState(random_state).choice(n, size=min(n, k), replace=False)


def build_embedding_profile(
    name: str,
    columns: Sequence[str],
    matrix: np.ndarray,
    n_null: int = 0,
    *,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    max_exact: int = DEFAULT_MAX_EXACT,
    sketch_bins: int = DEFAULT_SKETCH_BINS,
    seed: int = 0,
) -> EmbeddingProfile:
    """Profile a reference embedding given as an (n, d) array of finite values.

    The row sample holds evidently's 1,000 MMD bandwidth rows plus seeded further rows, up to
    ``sample_rows`` (so it stays a uniform sample of the reference).
    """
    if sample_rows < BANDWIDTH_ROWS:
        raise ValueError(f"sample_rows must be at least {BANDWIDTH_ROWS} (the MMD bandwidth rows), got {sample_rows}")
    matrix = np.asarray(matrix)
    m, d = matrix.shape if matrix.ndim == 2 else (len(matrix), 0)
    if m == 0 or d == 0:
        raise ValueError(f"embedding {name!r}: no reference vectors")
    bw = pandas_sample_index(m, BANDWIDTH_ROWS)
    if m <= sample_rows:
        keep = np.arange(m)
    else:
        rest = np.setdiff1d(np.arange(m), bw, assume_unique=True)
        extra = np.random.default_rng(seed).choice(rest, sample_rows - len(bw), replace=False)
        keep = np.sort(np.concatenate([bw, extra]))
    lows, highs, comps = np.full(d, np.nan), np.full(d, np.nan), []
    for j in range(d):
        sample, lows[j], highs[j] = reduce_numbers(np.ascontiguousarray(matrix[:, j], dtype=np.float64),
                                                   max_exact, sketch_bins)  # fmt: skip
        comps.append(sample)
    return EmbeddingProfile(
        name,
        tuple(columns),
        m,
        n_null,
        matrix.mean(axis=0, dtype=np.float64),
        tuple(comps),
        lows,
        highs,
        sketch_bins,
        np.array(matrix[keep], dtype=np.float64),
        np.searchsorted(keep, bw),
    )


# the check


@dataclass(frozen=True)
class EmbeddingDrift:
    """One embedding's result. ``exact``: the method saw every row of both windows, as evidently
    does (otherwise it ran on seeded samples, see the module docstring). A check that could not
    run has ``status="error"``, a ``message``, and no score or verdict."""

    name: str
    method: EmbeddingMethod
    score: float | None
    threshold: float
    drifted: bool | None
    n_reference: int
    n_current: int
    dim: int
    bootstrap: bool = False
    exact: bool = True
    status: Literal["ok", "error"] = "ok"
    message: str = ""

    @classmethod
    def failed(cls, profile: EmbeddingProfile, method: EmbeddingMethod, message: str) -> EmbeddingDrift:
        nan = float("nan")
        return cls(profile.name, method, None, nan, None, profile.n_rows, 0, profile.dim, status="error",
                   message=message)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` shape of one embedding (an error has null score, threshold and verdict)."""
        ok = self.status == "ok"
        return {
            "name": self.name,
            "method": self.method,
            "score": float(self.score) if ok and self.score is not None else None,
            "threshold": float(self.threshold) if ok else None,
            "drifted": bool(self.drifted) if ok else None,
        }


def embedding_drift(
    reference: EmbeddingProfile | np.ndarray,
    current: np.ndarray,
    options: EmbeddingOptions | None = None,
    name: str = "embedding",
) -> EmbeddingDrift:
    """Test one embedding's current vectors against the reference (a profile, or raw vectors).

    >>> rng = np.random.default_rng(0)
    >>> ref = rng.normal(size=(1500, 16))
    >>> same, moved = rng.normal(size=(1500, 16)), rng.normal(0.3, 1, size=(1500, 16))
    >>> from detectors.options import METHODS
    >>> [embedding_drift(ref, cur, EmbeddingOptions(method=m)).drifted for m in METHODS for cur in (same, moved)]
    [False, True, False, True, False, True, False, True]
    """
    options = options or EmbeddingOptions()
    if isinstance(reference, EmbeddingProfile):
        profile = reference
    else:  # raw vectors: keep every row and every value, as evidently reads them
        rows = max(len(reference), BANDWIDTH_ROWS)
        profile = build_embedding_profile(name, (), reference, sample_rows=rows, max_exact=rows)
    current = np.asarray(current)
    if current.ndim != 2 or len(current) == 0:
        raise ValueError(f"embedding {profile.name!r}: no current vectors")
    if current.shape[1] != profile.dim:
        raise ValueError(f"embedding {profile.name!r}: {current.shape[1]} components, the reference has {profile.dim}")
    method = options.method_for()
    bootstrap = options.bootstrap_for(method, profile.n_rows)
    threshold = options.threshold_for()
    n = len(current)
    rows_exact = profile.whole and n <= options.max_rows
    quantile = options.quantile_for(method)
    if method == "distance":
        statistic = _DISTANCES[options.distance](profile.mean, current.mean(axis=0, dtype=np.float64))
        if bootstrap:
            threshold = _distance_bootstrap(profile.sample, n, profile.n_rows, options.distance, quantile)
        exact = not bootstrap or rows_exact
    elif method == "ratio":
        statistic = ratio_score(profile, current, options)
        exact = bool(np.isnan(profile.sketch_lo).all())
    elif method == "model":
        statistic, random_q = model_score(profile.sample, _sample_rows(current, options), bootstrap, quantile)
        threshold = random_q if bootstrap else threshold
        exact = rows_exact
    else:
        cur = _sample_rows(current, options)
        bw_rows = np.asarray(current[pandas_sample_index(n, BANDWIDTH_ROWS)], dtype=np.float64)
        bandwidth = _pairwise(profile.sample[profile.bandwidth], bw_rows)
        statistic = mmd2u(profile.sample, cur, 1.0 / float(np.median(bandwidth)) ** 2)
        threshold = _mmd_bootstrap(profile, len(cur), quantile) if bootstrap else threshold
        exact = rows_exact
    # evidently: every method drifts strictly above its threshold; mmd reports max(statistic, 0)
    # but compares the statistic itself
    score = max(statistic, 0.0) if method == "mmd" else statistic
    return EmbeddingDrift(profile.name, method, float(score), float(threshold), bool(statistic > threshold),
                          profile.n_rows, n, profile.dim, bootstrap, exact)  # fmt: skip


def _sample_rows(matrix: np.ndarray, options: EmbeddingOptions) -> np.ndarray:
    """At most ``max_rows`` rows (seeded, in order), as a C-ordered float64 array."""
    if len(matrix) > options.max_rows:
        picked = np.random.default_rng(options.seed).choice(len(matrix), options.max_rows, replace=False)
        matrix = matrix[np.sort(picked)]
    return np.ascontiguousarray(matrix, dtype=np.float64)


def model_score(ref: np.ndarray, cur: np.ndarray, bootstrap: bool, quantile: float) -> tuple[float, float]:
    """Evidently's ``model`` method: the domain classifier's held-out ROC AUC, and (with
    ``bootstrap``) the quantile of 100 random classifiers' AUCs on the same held-out labels."""
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    x = np.vstack([ref, cur])
    y = np.concatenate([np.ones(len(ref), dtype=np.int64), np.zeros(len(cur), dtype=np.int64)])
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, random_state=42, shuffle=True)
    clf = SGDClassifier(loss="log_loss", random_state=42).fit(x_train, y_train)
    auc = float(roc_auc_score(y_test, clf.predict_proba(x_test)[:, 1]))
    if not bootstrap:
        return auc, float("nan")
    # evidently seeds numpy's global generator with 0..99 before each random classifier
    return auc, float(np.percentile(random_aucs(y_test, range(N_BOOTSTRAP)), 100 * quantile))


def ratio_score(profile: EmbeddingProfile, current: np.ndarray, options: EmbeddingOptions) -> float:
    """Evidently's ``ratio`` method: the share of components whose test says drift."""
    test = get_stattest(options.component_stattest, options.component_stattest_threshold)
    n_drifted = 0
    for j, ref in enumerate(profile.components):
        column = np.ascontiguousarray(current[:, j], dtype=np.float64)
        cur = reduce_like(column, float(profile.sketch_lo[j]), float(profile.sketch_hi[j]), profile.sketch_bins)
        n_drifted += bool(test(ref, cur).drifted)
    return n_drifted / profile.dim


def _distance_bootstrap(sample: np.ndarray, n: int, m: int, metric: str, quantile: float) -> float:
    """Evidently's resampled threshold for ``distance``: distances between the means of two
    resamples (with replacement) of reference rows, sized from the two windows' sizes. Drawn from
    the row sample: a mean of b draws from it varies as one of b draws from the reference."""
    k = len(sample)
    b_ref, b_cur = int(m**2 / (m + n)), int(n * m / (m + n))
    dist = _DISTANCES[metric]
    values = []
    for i in range(N_BOOTSTRAP):
        rs = np.random.RandomState(i)
        a, b = rs.choice(k, b_ref), rs.choice(k, b_cur)
        values.append(dist(sample[a].mean(axis=0), sample[b].mean(axis=0)))
    return float(np.percentile(values, 100 * quantile))


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from sklearn.metrics import pairwise_distances

    return np.asarray(pairwise_distances(a, b, metric="euclidean"))


def _kernel_sums(a: np.ndarray, b: np.ndarray, gamma: float, block: int = 1024) -> tuple[float, float]:
    """Sum and trace of the RBF kernel matrix between the rows of ``a`` and ``b``, in blocks of
    rows so that memory stays ``block * len(b)`` whatever the sizes."""
    from sklearn.metrics.pairwise import rbf_kernel

    total, trace = 0.0, 0.0
    for start in range(0, len(a), block):
        k = rbf_kernel(a[start : start + block], b, gamma=gamma)
        total += float(k.sum())
        if a is b:
            trace += float(np.trace(k, offset=start))
    return total, trace


def mmd2u(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """The unbiased squared MMD of evidently's ``MMD2u``, with an RBF kernel of width ``gamma``."""
    m, n = len(x), len(y)
    kx, kx_diag = _kernel_sums(x, x, gamma)
    ky, ky_diag = _kernel_sums(y, y, gamma)
    kxy, _ = _kernel_sums(x, y, gamma)
    return (kx - kx_diag) / (m * (m - 1.0)) + (ky - ky_diag) / (n * (n - 1.0)) - 2.0 * kxy / (m * n)


def _mmd_bootstrap(profile: EmbeddingProfile, n: int, quantile: float) -> float:
    """Evidently's resampled threshold for ``mmd``: the statistic between resamples of reference
    rows (bandwidth from the reference's 1,000 bandwidth rows alone). Sized from the row sample
    and the (sampled) current window: evidently's sizes need the kernel of every reference row."""
    x = profile.sample
    m = len(x)
    gamma = 1.0 / float(np.median(_pairwise(x[profile.bandwidth], x[profile.bandwidth])) ** 2)
    from sklearn.metrics.pairwise import rbf_kernel

    kernel = rbf_kernel(x, gamma=gamma)
    x_size, y_size = max(int(m * m / (m + n)), 1), max(int(m * n / (m + n)), 1)
    values = []
    for i in range(N_BOOTSTRAP):
        rs = np.random.RandomState(i)
        xi, yi = rs.choice(len(x), x_size), rs.choice(len(x), y_size)
        kxx, kyy, kxy = kernel[np.ix_(xi, xi)], kernel[np.ix_(yi, yi)], kernel[np.ix_(xi, yi)]
        values.append(
            (kxx.sum() - kxx.trace()) / (x_size * (x_size - 1.0))
            + (kyy.sum() - kyy.trace()) / (y_size * (y_size - 1.0))
            - 2.0 * kxy.sum() / (x_size * y_size)
        )
    return float(np.percentile(values, 100 * quantile))


def linear_probe(
    x: np.ndarray, y: np.ndarray, task: Literal["classification", "regression"], folds: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None]:
    """Out-of-fold predictions of a linear model of ``y`` on the embeddings ``x`` alone (logistic
    regression for classes, with their probabilities; ridge for numbers): how much of a target an
    embedding carries, as a model refitted on it would read it.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(300, 4))
    >>> pred, proba = linear_probe(x, (x[:, 0] > 0).astype(int), "classification")
    >>> float((pred == (x[:, 0] > 0)).mean()) > 0.9, proba.shape
    (True, (300, 2))
    """
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(x, dtype=np.float64)
    if task == "classification":
        _, counts = np.unique(y, return_counts=True)
        splits = StratifiedKFold(min(folds, int(counts.min())), shuffle=True, random_state=seed)
        clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        proba = cross_val_predict(clf, x, y, cv=splits, method="predict_proba")
        return np.unique(y)[proba.argmax(axis=1)], proba
    reg = make_pipeline(StandardScaler(), Ridge())
    return cross_val_predict(reg, x, y, cv=KFold(folds, shuffle=True, random_state=seed)), None
