"""The fast reading of a current window agrees with plain pandas/scipy on awkward random frames:
nulls, infinities, integers, booleans, all-null columns, unseen categories, numbers held as
objects, extension dtypes, empty windows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import wasserstein_distance as scipy_wasserstein

from detectors.drift import DriftOptions, detect_drift
from detectors.profile import ColumnsOf, CurrentColumn, CurrentWindow, build_profile, dtype_family
from detectors.quality import check_quality
from detectors.stattests import Sample, get_stattest
from detectors.stattests.base import factorize_labels, plain_label
from detectors.stattests.wasserstein import wasserstein_distance

CATEGORICAL = ("s", "u", "onull", "code")
SEEDS = range(6)


def _frame(rng: np.random.Generator, n: int, *, unseen: bool) -> pd.DataFrame:
    x = np.round(rng.normal(rng.normal(), 1, n), int(rng.integers(0, 5)))
    x[rng.random(n) < 0.1] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    s = rng.choice(np.array(["a", "b", "c", None, np.nan], dtype=object), n)
    mixed = rng.choice(np.array([1, 2.5, None, 7], dtype=object), n)
    return pd.DataFrame(
        {
            "x": x,
            "wide": rng.normal(0, 1, n),
            "i": rng.integers(-3, 40, n),
            "b": rng.random(n) < 0.3,
            "s": s,
            "u": rng.choice(["a", "b", "c", "d", "e"] if unseen else ["a", "b", "c"], n),
            "null": np.full(n, np.nan),
            "onull": np.full(n, None, dtype=object),
            "mixed": mixed,
            "code": rng.integers(0, 4, n),
        }
    )


def _slow_sample(series: pd.Series, kind: str) -> Sample:
    """What a column reduced to before the fast path: np.unique and value_counts."""
    if kind == "numerical":
        arr = series.to_numpy(dtype="float64", na_value=np.nan)
        values, counts = np.unique(arr[np.isfinite(arr)], return_counts=True)
        integer = pd.api.types.is_integer_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype)
        return Sample(values, counts.astype(np.int64), "numerical", integer)
    vc = series.value_counts(dropna=True, sort=False)
    labels = np.empty(len(vc), dtype=object)
    labels[:] = [plain_label(v) for v in vc.index]
    return Sample(labels, vc.to_numpy(dtype=np.int64), "categorical")


def _columns() -> list[pd.Series]:
    rng = np.random.default_rng(1)
    frame = _frame(rng, 500, unseen=True)
    extra = [
        pd.Series(pd.Categorical(["x", None, "y", "x"], categories=["x", "y", "z"])),
        pd.Series([1, None, 3], dtype="Int64"),
        pd.Series(["p", None, "q"], dtype="string"),
        pd.Series(pd.to_datetime(["2024-01-01", None, "2024-01-02"])),
        pd.Series([[1], [1], None], dtype=object),
        pd.Series([True, None, False], dtype=object),
        pd.Series([], dtype=float),
        pd.Series([], dtype=object),
    ]
    return [frame[c] for c in frame.columns] + extra


@pytest.mark.parametrize("series", _columns(), ids=lambda s: f"{s.name}:{s.dtype}")
def test_a_column_is_read_as_pandas_reads_it(series: pd.Series) -> None:
    col = CurrentColumn(series)
    assert col.n_null == int(series.isna().sum())
    assert col.family == dtype_family(series)
    # a categorical column reads as its values would as objects: categories that never occur are not values
    plain = series.astype(object) if isinstance(series.dtype, pd.CategoricalDtype) else series
    try:
        slow = _slow_sample(plain, "categorical")
    except TypeError:  # unhashable labels are compared by their text, on both paths
        slow = _slow_sample(series.map(lambda v: v if v is None else str(v)), "categorical")
    assert col.labels.values.tolist() == slow.values.tolist()
    assert col.labels.counts.tolist() == slow.counts.tolist()
    if col.inferred_kind == "numerical":
        slow_num = _slow_sample(series, "numerical")
        assert np.array_equal(col.numbers.values, slow_num.values)
        assert np.array_equal(col.numbers.counts, slow_num.counts)
        assert col.numbers.integer == slow_num.integer
        assert np.array_equal(col.numbers.expand(), np.repeat(slow_num.values, slow_num.counts))


@pytest.mark.parametrize("seed", range(300))
def test_wasserstein_matches_scipy_on_ties_and_unequal_sizes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = np.round(rng.normal(0, 3, rng.integers(1, 400)), int(rng.integers(0, 3)))
    b = np.round(rng.normal(rng.normal(), 3, rng.integers(1, 400)), int(rng.integers(0, 3)))
    sa, sb = Sample.from_values(a, "numerical"), Sample.from_values(b, "numerical")
    expected = scipy_wasserstein(a, b)
    assert wasserstein_distance(sa, sb) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert wasserstein_distance(sb, sa) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize(("n_ref", "n_cur"), [(10_000, 10_000), (10_000, 9_999), (60_000, 50_001)])
def test_wasserstein_of_long_distinct_samples_matches_scipy(n_ref: int, n_cur: int) -> None:
    """Long samples of mostly distinct values take the interleaving path (kept below 100k pieces)."""
    rng = np.random.default_rng(n_cur)
    a, b = np.round(rng.normal(0, 1, n_ref), 4), np.round(rng.normal(0.05, 1.2, n_cur), 4)
    sa, sb = Sample.from_values(a, "numerical"), Sample.from_values(b, "numerical")
    assert sa.mostly_distinct and sb.mostly_distinct
    assert wasserstein_distance(sa, sb) == pytest.approx(scipy_wasserstein(a, b), rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_drift_scores_match_the_slow_reduction(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = _frame(rng, 3000, unseen=False), _frame(rng, int(rng.integers(200, 2500)), unseen=True)
    profile = build_profile(ref, categorical=CATEGORICAL)
    report = detect_drift(profile, cur, DriftOptions(categorical=CATEGORICAL))
    checked = 0
    for c in report.columns:
        ref_col = profile.column(c.column)
        slow = _slow_sample(pd.to_numeric(cur[c.column]) if c.column == "mixed" else cur[c.column], c.kind)
        assert c.null_share_cur == pytest.approx((len(cur) - slow.n) / len(cur), abs=1e-15)
        if c.score is None:
            assert c.status == "all_null"
            continue
        expected = get_stattest(c.test, c.threshold)(ref_col.sample, slow)
        assert c.score == pytest.approx(expected.score, rel=1e-9, abs=1e-12)
        assert c.drifted == expected.drifted
        if c.test == "wasserstein":
            norm = max(ref_col.sample.mean_std()[1], 0.001)
            raw = scipy_wasserstein(ref_col.sample.expand(), slow.expand()) / norm
            assert c.score == pytest.approx(raw, rel=1e-9, abs=1e-12)
        checked += 1
        if c.kind == "categorical":
            ref_labels, cur_labels = set(ref_col.sample.values.tolist()), set(slow.values.tolist())
            assert (c.unseen_categories, c.vanished_categories) == (
                len(cur_labels - ref_labels),
                len(ref_labels - cur_labels),
            )
    assert checked >= 6


@pytest.mark.parametrize("seed", SEEDS)
def test_quality_reads_columns_as_pandas_does(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref, cur = _frame(rng, 2000, unseen=False), _frame(rng, 1500, unseen=seed % 2 == 0)
    q = check_quality(build_profile(ref, categorical=CATEGORICAL), cur)
    for c in q.columns:
        assert c.null_share_cur == pytest.approx(cur[c.column].isna().mean(), abs=1e-15)
        if c.unseen_share is not None:
            vc = cur[c.column].value_counts(dropna=True)
            known = set(ref[c.column].dropna().tolist())
            assert c.unseen_share == pytest.approx(vc[~vc.index.isin(known)].sum() / vc.sum(), abs=1e-15)
            assert c.n_unique_cur == len(vc)


@pytest.mark.parametrize("rows", [0, 1, 800])
def test_a_shared_window_gives_the_same_reports(rows: int) -> None:
    rng = np.random.default_rng(7)
    ref, cur = _frame(rng, 2000, unseen=False), _frame(rng, rows, unseen=True)
    profile = build_profile(ref, categorical=CATEGORICAL)
    options = DriftOptions(categorical=CATEGORICAL)
    window = CurrentWindow(cur)
    assert check_quality(profile, window) == check_quality(profile, cur)
    shared, alone = detect_drift(profile, window, options), detect_drift(profile, cur, options)
    assert repr(shared) == repr(alone)  # repr: NaN scores compare equal as text
    # the same columns read in place from a wider frame (a window's rows with id and label)
    wide = cur.assign(id=np.arange(rows), label=rng.integers(0, 2, rows))
    in_place = CurrentWindow(ColumnsOf(wide, list(cur.columns)))
    assert check_quality(profile, in_place) == check_quality(profile, cur)
    assert repr(detect_drift(profile, in_place, options)) == repr(alone)
    pd.testing.assert_frame_equal(in_place.dataframe(), cur)


@pytest.mark.parametrize("seed", range(200))
def test_a_categorical_factorizes_as_its_values_as_objects(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = int(rng.integers(1, 8))
    values = rng.choice([f"v{i}" for i in range(k)] + [None], int(rng.integers(0, 60))).astype(object)
    categories = [f"v{i}" for i in rng.permutation(k + 2)]  # in any order, some never used
    if seed % 3 == 0:  # as a Parquet dictionary has them: in order of first appearance, all used
        categories = [v for v in pd.unique(values) if v is not None] or categories
    got = factorize_labels(pd.Series(pd.Categorical(values, categories=categories)))
    want = pd.factorize(values, use_na_sentinel=True)
    assert got is not None
    assert np.array_equal(got[0], want[0]) and got[0].dtype == want[0].dtype
    assert got[1].tolist() == want[1].tolist()


@pytest.mark.parametrize("seed", SEEDS)
def test_theil_sen_slope_is_scipys(seed: int) -> None:
    from scipy.stats import theilslopes

    from detectors.decay import theil_sen_slope

    rng = np.random.default_rng(seed)
    for n in range(3, 13):
        y = np.round(rng.normal(0, 2, n), int(rng.integers(0, 3)))  # rounding makes ties
        assert theil_sen_slope(y) == float(theilslopes(y)[0])


@pytest.mark.parametrize("dtype", [np.int64, np.int8, np.uint8, np.uint64, bool])
def test_integer_class_codes_are_the_dicts(dtype: type) -> None:
    from detectors.performance import class_codes

    rng = np.random.default_rng(0)
    classes = [2, 0, 1]
    values = rng.choice([0, 1, 2] if dtype is not bool else [0, 1], 500).astype(dtype)
    code = {c: i for i, c in enumerate(classes)}
    assert class_codes(values, classes).tolist() == [code[v] for v in values.tolist()]
    assert class_codes(values, np.array(classes)).tolist() == [code[v] for v in values.tolist()]
    with pytest.raises(KeyError, match="7"):
        class_codes(np.append(values, 7).astype(np.int64), classes)


@pytest.mark.parametrize("seed", SEEDS)
def test_integer_label_counts_are_value_counts(seed: int) -> None:
    from detectors.stattests.base import _small_integer_counts, label_counts

    rng = np.random.default_rng(seed)
    for values in (
        rng.integers(-3, 40, 300),
        rng.integers(0, 2, 1000).astype(np.uint8),
        np.array([10**12, 5, 10**12]),  # too wide for a bincount: pandas counts it
        np.array([7]),
        np.array([-128, 127, 0, 127], dtype=np.int8),  # less the minimum, int8 would wrap
        np.array([2**64 - 1, 2**64 - 3], dtype=np.uint64),  # beyond intp: pandas counts it
    ):
        series = pd.Series(values)
        counts = series.value_counts(dropna=True, sort=False)
        labels, got = label_counts(series)
        assert labels == list(counts.index) and all(type(v) is int for v in labels)
        assert got.tolist() == counts.tolist() and got.dtype == np.int64
    assert _small_integer_counts(pd.Series([1.0, 2.0])) is None
    assert _small_integer_counts(pd.Series([10**12, 5])) is None
