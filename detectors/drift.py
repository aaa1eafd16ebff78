"""Drift of a current window against a reference: per column, then for the dataset.

:func:`detect_drift` takes the reference as a DataFrame or a stored
:class:`~detectors.profile.ReferenceProfile` and returns a frozen :class:`DriftReport`.
:class:`DriftOptions` is the one config schema (the ``drift:`` section of a model's YAML).

Per column the test is chosen as evidently chooses it (or as configured), run on the column's
non-null finite values, and reported with a status; a column that cannot be tested gets a status
and no verdict instead of stopping the others. The dataset verdict is evidently's: drifted when
the share of drifted columns (among columns with a verdict) reaches ``drift_share``. Optional,
beyond evidently: Bonferroni or Benjamini-Hochberg correction across the p-value tests, and an
effect-size floor (``min_effect``) below which no column counts as drifted.

Embeddings (``embeddings``, tested by :mod:`detectors.embeddings`) and free-text columns (``text``,
:mod:`detectors.text`) are checked beside the columns: each embedding and each text column's
content test gives one verdict that counts in the dataset share like a column, and a text
column's descriptors are checked as the numerical columns ``<column>.length``,
``<column>.oov_share`` and ``<column>.non_letter_share``. Their source columns are not tested as
columns.

Errors: ``ValueError`` for options that do not fit the data (a test that does not accept the
column's kind, a requested column found in neither window, an embedding the profile lacks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from detectors.embeddings import (
    EmbeddingDrift,
    EmbeddingProfile,
    embedding_drift,
    embedding_matrix,
    resolve_columns,
)
from detectors.options import DriftOptions
from detectors.profile import (
    ColumnProfile,
    ColumnsOf,
    CurrentColumn,
    CurrentWindow,
    ReferenceProfile,
    as_window,
    build_profile,
    dtype_family,
    infer_kind,
)
from detectors.sketch import bin_values
from detectors.stattests import STATTESTS, Kind, Sample, StatTest, TestNotApplicable, get_stattest
from detectors.stattests.base import aligned_counts, is_integer_column
from detectors.stattests.registry import auto_stattest_name
from detectors.stattests.wasserstein import Wasserstein
from detectors.text import DESCRIPTORS, TextDrift, TextProfile, descriptors, text_drift

Status = Literal["ok", "empty", "all_null", "constant", "missing_in_current", "new_in_current", "type_changed", "error"]


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift result. ``score``/``drifted`` are None when the column was not tested
    (see ``status`` and ``message``). ``p_adjusted`` is set when a correction was applied."""

    column: str
    kind: Kind
    test: str
    score: float | None
    threshold: float
    drifted: bool | None
    status: Status
    null_share_ref: float | None = None
    null_share_cur: float | None = None
    unseen_categories: int = 0
    vanished_categories: int = 0
    effect: float | None = None
    p_adjusted: float | None = None
    is_pvalue: bool = False
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The issue's ``--json`` shape for one column."""
        return {
            "column": self.column,
            "kind": self.kind,
            "test": self.test,
            "score": _json_float(self.score),
            "threshold": float(self.threshold),
            "drifted": self.drifted,
            "status": self.status,
        }


@dataclass(frozen=True)
class DriftReport:
    """The dataset verdict and every column's result."""

    drift_share: float
    n_drifted: int
    n_columns: int
    drifted: bool
    columns: tuple[ColumnDrift, ...]
    engine: str = "native"
    embeddings: tuple[EmbeddingDrift, ...] = ()
    text: tuple[TextDrift, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Exactly the ``--json`` shape: ``{"dataset": {...}, "columns": [...]}``, plus
        ``"embeddings"`` and ``"text"`` lists when the check had any."""
        out: dict[str, Any] = {
            "dataset": {
                "drift_share": float(self.drift_share),
                "n_drifted": int(self.n_drifted),
                "n_columns": int(self.n_columns),
                "drifted": bool(self.drifted),
            },
            "columns": [c.to_dict() for c in self.columns],
        }
        if self.embeddings:
            out["embeddings"] = [e.to_dict() for e in self.embeddings]
        if self.text:
            out["text"] = [t.to_dict() for t in self.text]
        return out

    def column(self, name: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)


def _json_float(value: float | None) -> float | None:
    # JSON has no NaN; a NaN score (a degenerate p-value) is reported as null
    return None if value is None or not math.isfinite(value) else float(value)


def detect_drift(
    reference: pd.DataFrame | ReferenceProfile,
    current: pd.DataFrame | CurrentWindow,
    options: DriftOptions | None = None,
) -> DriftReport:
    """Compare ``current`` with the reference (raw, or a profile built once).

    ``current`` may be a :class:`~detectors.profile.CurrentWindow` shared with
    :func:`~detectors.quality.check_quality`, which then reads each column once.

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.DataFrame({"x": rng.normal(0, 1, 2000), "c": rng.choice(["a", "b"], 2000)})
    >>> cur = pd.DataFrame({"x": rng.normal(1, 1, 2000), "c": rng.choice(["a", "b"], 2000)})
    >>> r = detect_drift(ref, cur)
    >>> [(c.column, c.test, c.drifted) for c in r.columns], r.drift_share, r.drifted
    ([('x', 'wasserstein', True), ('c', 'jensenshannon', False)], 0.5, True)
    """
    options = options or DriftOptions()
    if options.engine == "evidently":
        # evidently builds on this module (its results are put in this module's report), not the reverse
        raise ValueError("engine='evidently' runs through detectors.evidently_engine.run_evidently")
    profile = _as_profile(reference, options)
    _check_overrides(profile, options)
    window = as_window(current)
    embeddings = _embeddings_to_check(profile, options)
    texts = [t for t in profile.texts if options.text is None or t.column in options.text]
    skip = {c for e in profile.embeddings for c in e.columns} | {t.column for t in profile.texts}
    names = [n for n in _columns_to_check(profile, window.frame, options) if n not in skip]
    results = [_safe_column(name, profile, window, options) for name in names]
    text_results = []
    for t in texts:
        drift, columns = _check_text(t, window, options)
        text_results += [drift] if drift is not None else []
        results += columns
    emb_results = tuple(_check_embedding(e, window, options) for e in embeddings)
    return finalize(results, options, engine="native", embeddings=emb_results, texts=tuple(text_results))


def _as_profile(reference: pd.DataFrame | ReferenceProfile, options: DriftOptions) -> ReferenceProfile:
    if isinstance(reference, ReferenceProfile):
        return reference
    columns = None
    if options.columns is not None:
        columns = [c for c in options.columns if c in reference.columns]
    categorical = [c for c in options.categorical if c in reference.columns]
    # no row sample: it serves the multivariate check, never a column's test
    return build_profile(reference, categorical=categorical, columns=columns, sample_rows=0,
                         embeddings=options.embeddings, text=options.text)  # fmt: skip


def _embeddings_to_check(profile: ReferenceProfile, options: DriftOptions) -> list[EmbeddingProfile]:
    """The profile's embeddings, or the ones the options name (each must be in the profile)."""
    if not options.embeddings:
        return list(profile.embeddings)
    kept = {e.name: e for e in profile.embeddings}
    missing = [n for n in options.embeddings if n not in kept]
    if missing:
        raise ValueError(f"the reference profile has no embedding {', '.join(map(repr, missing))}: rebuild it "
                         "with these embeddings")  # fmt: skip
    return [kept[n] for n in options.embeddings]


def _check_embedding(emb: EmbeddingProfile, window: CurrentWindow, options: DriftOptions) -> EmbeddingDrift:
    method = options.embedding.method_for()
    try:
        # the current window must hold the columns the reference's embedding was read from
        cols = resolve_columns(window.frame.columns, list(emb.columns), emb.name)
        return embedding_drift(emb, embedding_matrix(window.frame, cols, emb.name), options.embedding)
    except Exception as exc:  # one bad embedding must never stop the other checks
        return EmbeddingDrift.failed(emb, method, f"{type(exc).__name__}: {exc}")


def _check_text(
    text: TextProfile, window: CurrentWindow, options: DriftOptions
) -> tuple[TextDrift | None, list[ColumnDrift]]:
    """The content test of one text column and its descriptors' column checks."""
    names = [f"{text.column}.{d}" for d in DESCRIPTORS]
    described = pd.DataFrame()
    drift: TextDrift | None = None
    if text.column in window.frame.columns:
        series = window.frame[text.column]
        try:
            drift = text_drift(text, series, threshold=options.text_threshold)
        except Exception as exc:  # as for a column: a status, and the other checks go on
            drift = TextDrift.failed(text, f"{type(exc).__name__}: {exc}")
        described = descriptors(series, text.vocabulary).set_axis(names, axis=1)
    columns = tuple(
        ColumnProfile(name, "numerical", "numeric", text.n_rows, nulls, sample, not math.isnan(lo), lo, hi,
                      text.sketch_bins if not math.isnan(lo) else 0)
        for name, nulls, sample, lo, hi in zip(names, text.descriptor_nulls, text.descriptor_samples,
                                               text.descriptor_lo, text.descriptor_hi, strict=True)
    )  # fmt: skip
    sub = ReferenceProfile(text.n_rows, columns)
    frame = CurrentWindow(described, keep=False)
    no_override = options.model_copy(update={"columns": None})
    return drift, [_safe_column(name, sub, frame, no_override) for name in names]


def _check_overrides(profile: ReferenceProfile, options: DriftOptions) -> None:
    """A per-column test that cannot run on that column's kind is a config error, raised before
    any work rather than buried in a column status."""
    for column, name in options.per_column_stattest.items():
        if column in profile and profile.column(column).kind not in STATTESTS[name].kinds:
            kind = profile.column(column).kind
            accepts = ", ".join(STATTESTS[name].kinds)
            raise ValueError(f"column {column!r}: {name} does not accept {kind} columns (accepts {accepts})")


def detect_prediction_drift(
    reference: pd.Series | ColumnProfile | ReferenceProfile,
    current: pd.Series,
    options: DriftOptions | None = None,
    *,
    categorical: bool | None = None,
) -> ColumnDrift:
    """Drift of the model's outputs: scores/probabilities (numerical) or labels (categorical).

    The same tests and automatic choice as for inputs; ``categorical`` forces the kind (default:
    from the dtype). ``reference`` may be a profile holding a column named like ``current``.

    >>> rng = np.random.default_rng(0)
    >>> ref = pd.Series(rng.beta(2, 5, 3000), name="score")
    >>> detect_prediction_drift(ref, pd.Series(rng.beta(5, 2, 3000), name="score")).drifted
    True
    """
    options = options or DriftOptions()
    name = str(current.name) if current.name is not None else "prediction"
    cat = (name,) if categorical else ()
    if isinstance(reference, pd.Series):
        profile = build_profile(pd.DataFrame({name: reference.to_numpy()}), categorical=cat)
    elif isinstance(reference, ColumnProfile):
        profile = ReferenceProfile(reference.n_rows, (replace(reference, name=name),))
    else:
        profile = reference
    frame = pd.DataFrame({name: current.to_numpy()})
    return detect_drift(profile, frame, options.model_copy(update={"columns": (name,), "categorical": cat})).columns[0]


def _columns_to_check(profile: ReferenceProfile, current: pd.DataFrame | ColumnsOf, options: DriftOptions) -> list[str]:
    if options.columns is not None:
        unknown = [c for c in options.columns if c not in profile and c not in current.columns]
        if unknown:
            raise ValueError(f"column(s) in neither the reference nor the current data: {', '.join(unknown)}")
        return list(options.columns)
    # like evidently, timestamps are not drift features (every new window has new ones); they
    # are checked only when named in ``columns``
    ref_cols = [c.name for c in profile.column_profiles if c.family != "datetime"]
    new_cols = [str(c) for c in current.columns if c not in profile and dtype_family(current[c]) != "datetime"]
    return ref_cols + new_cols


def _safe_column(name: str, profile: ReferenceProfile, window: CurrentWindow, options: DriftOptions) -> ColumnDrift:
    try:
        return _check_column(name, profile, window, options)
    except Exception as exc:  # one bad column must never stop the others
        kind: Kind = profile.column(name).kind if name in profile else "numerical"
        return ColumnDrift(name, kind, "", None, 0.0, None, "error", message=f"{type(exc).__name__}: {exc}")


def current_sample(ref: ColumnProfile, series: pd.Series | CurrentColumn) -> Sample:
    """The current column reduced like the reference: binned on the reference's bins when the
    reference is a sketch, so that identical windows give identical samples."""
    col = series if isinstance(series, CurrentColumn) else CurrentColumn(series)
    if ref.kind == "categorical":
        return col.labels
    if not ref.sketch:
        return col.numbers
    arr = col.finite
    binned = bin_values(arr, None, ref.sketch_lo, ref.sketch_hi, ref.sketch_bins, is_integer_column(col.series))
    # distinct values are not counted (that needs a sort): assume the reference's share of them
    share = ref.sample.n_distinct / ref.sample.n if ref.sample.n else 1.0
    return replace(binned, distinct=max(binned.n_unique, min(binned.n, round(binned.n * share))))


def choose_test(name: str, kind: Kind, ref: Sample, cur: Sample, options: DriftOptions) -> StatTest:
    """The configured test, or evidently's automatic choice, with its threshold."""
    test_name = options.configured_test(name, kind)
    if test_name is None:
        test_name = auto_stattest_name(ref, cur, kind)
    elif kind not in STATTESTS[test_name].kinds:
        accepts = ", ".join(STATTESTS[test_name].kinds)
        raise ValueError(f"column {name!r}: {test_name} does not accept {kind} columns (accepts {accepts})")
    return get_stattest(test_name, options.threshold_for(name, kind))


def _empty_sample(kind: Kind) -> Sample:
    return Sample(np.array([], dtype=np.float64 if kind == "numerical" else object), np.array([], np.int64), kind)


def _check_column(name: str, profile: ReferenceProfile, window: CurrentWindow, options: DriftOptions) -> ColumnDrift:
    current = window.frame
    if name not in profile:
        series = current[name]
        kind = infer_kind(series, name in options.categorical)
        cur = Sample.from_values(series, kind)
        test = choose_test(name, kind, _empty_sample(kind), cur, options)
        return ColumnDrift(name, kind, test.name, None, test.threshold, None, "new_in_current",
                           null_share_cur=_share(len(series) - cur.n, len(series)))  # fmt: skip
    ref_col = profile.column(name)
    ref = ref_col.sample
    kind = ref_col.kind
    base: dict[str, Any] = {"null_share_ref": ref_col.null_share}
    if name not in current.columns:
        test = choose_test(name, kind, ref, _empty_sample(kind), options)
        return ColumnDrift(name, kind, test.name, None, test.threshold, None, "missing_in_current", **base)
    col = _numbers_from_objects(window.column(name)) if kind == "numerical" else window.column(name)
    n_rows = col.n_rows
    if n_rows == 0 or ref_col.n_rows == 0:
        test = choose_test(name, kind, ref, _empty_sample(kind), options)
        return ColumnDrift(name, kind, test.name, None, test.threshold, None, "empty", **base)
    cur_family = col.family
    if cur_family != "other" and _type_changed(ref_col, col.series, cur_family):
        base["null_share_cur"] = col.n_null / n_rows
        test = choose_test(name, kind, ref, _empty_sample(kind), options)
        return ColumnDrift(name, kind, test.name, None, test.threshold, None, "type_changed",
                           message=f"{ref_col.family} -> {cur_family}", **base)  # fmt: skip
    cur = current_sample(ref_col, col)
    base["null_share_cur"] = (n_rows - cur.n) / n_rows  # infinities count as nulls, as evidently drops them
    unseen, vanished = _category_changes(ref, cur) if kind == "categorical" else (0, 0)
    base.update(unseen_categories=unseen, vanished_categories=vanished)
    test = choose_test(name, kind, ref, cur, options)
    if ref.n == 0 or cur.n == 0:
        return ColumnDrift(name, kind, test.name, None, test.threshold, None, "all_null", **base)
    status: Status = "constant" if ref.n_unique == 1 else "ok"
    try:
        result = test(ref, cur)
    except TestNotApplicable as exc:
        return ColumnDrift(name, kind, test.name, None, test.threshold, None, status, message=str(exc), **base)
    effect = effect_size(ref, cur) if options.min_effect > 0 else None
    return ColumnDrift(name, kind, test.name, result.score, result.threshold, result.drifted, status,
                       effect=effect, is_pvalue=test.is_pvalue, **base)  # fmt: skip


def _numbers_from_objects(col: CurrentColumn) -> CurrentColumn:
    """An object column holding only numbers and nulls (JSON sources do this) is numeric data in
    disguise, not a changed type: convert it when that loses no value."""
    if not pd.api.types.is_object_dtype(col.series.dtype) or col.family != "numeric":
        return col
    converted = pd.to_numeric(col.series, errors="coerce")
    return CurrentColumn(converted) if converted.notna().sum() == col.series.notna().sum() else col


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _type_changed(ref: ColumnProfile, series: pd.Series, cur_family: str) -> bool:
    if ref.n_null == ref.n_rows or cur_family == "other" or ref.family == "other":
        return False  # an all-null side has no meaningful type
    if ref.kind == "numerical":
        return cur_family != "numeric" or pd.api.types.is_object_dtype(series.dtype)
    return cur_family != ref.family


def _category_changes(ref: Sample, cur: Sample) -> tuple[int, int]:
    ref_keys = set(ref.values.tolist())
    cur_keys = set(cur.values.tolist())
    return len(cur_keys - ref_keys), len(ref_keys - cur_keys)


def effect_size(ref: Sample, cur: Sample) -> float:
    """Normed Wasserstein distance for numbers, total variation distance for categories."""
    if ref.kind == "numerical":
        return Wasserstein()(ref, cur).score
    _, rc, cc = aligned_counts(ref, cur)
    return float(0.5 * np.abs(rc / ref.n - cc / cur.n).sum())


def finalize(
    results: list[ColumnDrift],
    options: DriftOptions,
    engine: str,
    embeddings: tuple[EmbeddingDrift, ...] = (),
    texts: tuple[TextDrift, ...] = (),
) -> DriftReport:
    """Apply the correction and the effect floor, then the dataset verdict (each embedding and
    each text column's content test counts as one column)."""
    results = _apply_correction(results, options.correction)
    if options.min_effect > 0:
        results = [
            replace(r, drifted=False) if r.drifted and r.effect is not None and r.effect < options.min_effect else r
            for r in results
        ]
    verdicts = [r.drifted for r in results if r.drifted is not None]
    verdicts += [e.drifted for e in embeddings if e.drifted is not None]
    verdicts += [t.drifted for t in texts if t.drifted is not None]
    n_columns = len(verdicts)
    n_drifted = sum(verdicts)
    share = n_drifted / n_columns if n_columns else 0.0
    return DriftReport(share, n_drifted, n_columns, bool(n_columns and share >= options.drift_share),
                       tuple(results), engine, embeddings, texts)  # fmt: skip


def _apply_correction(results: list[ColumnDrift], correction: str) -> list[ColumnDrift]:
    if correction == "none":
        return results
    idx = [i for i, r in enumerate(results) if r.is_pvalue and r.score is not None and not math.isnan(r.score)]
    if not idx:
        return results
    p = np.array([results[i].score for i in idx], dtype=np.float64)
    m = len(p)
    if correction == "bonferroni":
        adjusted = np.minimum(p * m, 1.0)
    else:  # Benjamini-Hochberg step-up, as adjusted p-values (q-values)
        order = np.argsort(p)
        ranked = p[order] * m / np.arange(1, m + 1)
        q = np.minimum.accumulate(ranked[::-1])[::-1]
        adjusted = np.empty(m)
        adjusted[order] = np.minimum(q, 1.0)
    out = list(results)
    for i, adj in zip(idx, adjusted, strict=True):
        r = results[i]
        test = STATTESTS[r.test](r.threshold)
        out[i] = replace(r, p_adjusted=float(adj), drifted=test.drifted(float(adj)))
    return out
