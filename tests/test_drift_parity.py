"""Parity with evidently: every test, on every column kind of a generated corpus, gives evidently's
score (to 1e-6; TVD within its Monte Carlo error) and the same verdict, computed from a stored
and reloaded reference profile. Columns evidently cannot test come back with a status instead.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests import registry as ev_registry
from evidently.legacy.core import ColumnType

from detectors.drift import DriftOptions, current_sample, detect_drift
from detectors.evidently_engine import run_evidently
from detectors.profile import ReferenceProfile, build_profile
from detectors.stattests import STATTESTS, TestNotApplicable, get_stattest

Gen = Callable[[np.random.Generator, int, bool], np.ndarray]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # numerical | categorical
    gen: Gen
    n_ref: int = 600
    n_cur: int = 400


def _with_nulls(values: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    out = values.astype(object if values.dtype == object else np.float64)
    out[rng.random(len(out)) < share] = None if values.dtype == object else np.nan
    return out


def _p(*probs: float, s: bool) -> list[float]:
    """Probabilities with, when shifted, 0.1 moved from the last category to the one before."""
    out = list(probs)
    if s:
        out[-2] += 0.1 * out[-1] / 0.2
        out[-1] -= 0.1 * out[-1] / 0.2
    return out


CORPUS = [
    Case("normal", "numerical", lambda r, n, s: r.normal(0.4 * s, 1, n)),
    Case("normal_large", "numerical", lambda r, n, s: r.normal(0.1 * s, 1, n), 3000, 2000),
    Case("skewed", "numerical", lambda r, n, s: r.lognormal(0.3 * s, 1, n)),
    Case("heavy_tailed", "numerical", lambda r, n, s: r.standard_t(1.5, n) + 0.5 * s),
    Case("integers", "numerical", lambda r, n, s: r.poisson(6 + 2 * s, n)),
    Case("wide_integers", "numerical", lambda r, n, s: r.integers(0, 1000 + 300 * s, n)),
    Case("low_cardinality", "numerical", lambda r, n, s: r.choice([1.0, 2.0, 5.0], n, p=_p(0.5, 0.3, 0.2, s=s))),
    Case("binary_numbers", "numerical", lambda r, n, s: r.choice([0, 1], n, p=[0.7 - 0.2 * s, 0.3 + 0.2 * s])),
    Case("ninety_pct_null", "numerical", lambda r, n, s: _with_nulls(r.normal(s, 1, n), r, 0.9), 2000, 1500),
    Case("infinities", "numerical", lambda r, n, s: np.where(r.random(n) < 0.05, np.inf, r.normal(0.3 * s, 1, n))),
    Case("constant", "numerical", lambda r, n, s: np.full(n, 3.0)),
    Case("tiny", "numerical", lambda r, n, s: r.normal(2 * s, 1, n), 15, 12),
    Case("booleans", "categorical", lambda r, n, s: r.random(n) < 0.4 + 0.2 * s),
    Case("categories", "categorical", lambda r, n, s: r.choice(list("abcde"), n, p=_p(0.3, 0.3, 0.2, 0.1, 0.1, s=s))),
    Case("unseen_vanished", "categorical", lambda r, n, s: r.choice(list("abcd") if s else list("abce"), n)),
    Case("high_cardinality", "categorical", lambda r, n, s: r.integers(0, 300 + 20 * s, n).astype(str), 3000, 2000),
    Case("cats_large", "categorical", lambda r, n, s: r.choice(list("xyz"), n, p=_p(0.5, 0.3, 0.2, s=s)), 3000, 2000),
]  # fmt: skip

NUMERICAL_TESTS = ["ks", "wasserstein", "psi", "jensenshannon", "kl_div", "hellinger", "cramer_von_mises",
                   "anderson", "mannw", "t_test", "ed", "chisquare", "z"]  # fmt: skip
CATEGORICAL_TESTS = ["chisquare", "z", "psi", "jensenshannon", "kl_div", "hellinger", "TVD", "fisher_exact", "g_test"]


def _windows(case: Case, shifted: bool, equal: bool = False) -> tuple[pd.Series, pd.Series]:
    rng = np.random.default_rng(zlib.crc32(case.name.encode()))
    n_cur = case.n_ref if equal else case.n_cur
    return pd.Series(case.gen(rng, case.n_ref, False)), pd.Series(case.gen(rng, n_cur, shifted))


def _evidently(name: str, kind: str, ref: pd.Series, cur: pd.Series) -> tuple[float, bool] | None:
    """Evidently's own result, cleaned as its column drift does; None when evidently raises."""
    ref = ref.replace([-np.inf, np.inf], np.nan).dropna()
    cur = cur.replace([-np.inf, np.inf], np.nan).dropna()
    if ref.empty or cur.empty:
        return None
    ctype = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    test = next(iter(ev_registry._registered_stat_tests[name].values()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = test(ref, cur, ctype, None)
    except Exception:
        return None
    return float(res.drift_score), bool(res.drifted)


def _native(name: str, kind: str, ref: pd.Series, cur: pd.Series) -> tuple[float, bool] | None:
    """The native test, from a profile that went through bytes and back."""
    df = pd.DataFrame({"c": ref})
    profile = ReferenceProfile.from_bytes(
        build_profile(df, categorical=("c",) if kind == "categorical" else ()).to_bytes()
    )
    col = profile.column("c")
    try:
        res = get_stattest(name)(col.sample, current_sample(col, cur))
    except TestNotApplicable:
        return None
    return res.score, res.drifted


def _pairs() -> list[object]:
    out: list[object] = []
    for case in CORPUS:
        for name in NUMERICAL_TESTS if case.kind == "numerical" else CATEGORICAL_TESTS:
            for shifted in (False, True):
                # evidently's own TVD shuffles rows in Python 1000 times: seconds on large windows
                slow = name == "TVD" and case.n_ref > 1000
                out.append(pytest.param(case, name, shifted, marks=[pytest.mark.slow] if slow else []))
    return out


@pytest.mark.parametrize(("case", "name", "shifted"), _pairs(), ids=lambda v: getattr(v, "name", str(v)))
def test_score_and_verdict_match_evidently(case: Case, name: str, shifted: bool) -> None:
    # evidently's g_test and fisher_exact only run on equally long windows
    ref, cur = _windows(case, shifted, equal=name in ("g_test", "fisher_exact"))
    expected = _evidently(name, case.kind, ref, cur)
    got = _native(name, case.kind, ref, cur)
    if expected is None:
        # evidently fails on this column (anderson on a constant, fisher_exact on 3+ values): the
        # native test refuses too, with TestNotApplicable, which a report turns into a status
        assert got is None
        return
    assert got is not None, f"evidently gave {expected}, native refused"
    (e_score, e_drift), (n_score, n_drift) = expected, got
    if name == "TVD":
        # a Monte Carlo p-value: three standard errors of the difference of two 1000-draw estimates
        assert abs(n_score - e_score) <= 0.06, (n_score, e_score)
        if abs(e_score - STATTESTS[name].default_threshold) > 0.06:
            assert n_drift == e_drift
        return
    if math.isnan(e_score):
        assert math.isnan(n_score)
    else:
        assert n_score == pytest.approx(e_score, rel=1e-6, abs=1e-6)
    assert n_drift == e_drift


@pytest.mark.parametrize("case", CORPUS, ids=lambda c: c.name)
def test_automatic_choice_matches_evidently(case: Case) -> None:
    ref, cur = _windows(case, True)
    r = ref.replace([-np.inf, np.inf], np.nan).dropna()
    c = cur.replace([-np.inf, np.inf], np.nan).dropna()
    ctype = ColumnType.Numerical if case.kind == "numerical" else ColumnType.Categorical
    expected = ev_registry._get_default_stattest(r, c, ctype).name
    options = DriftOptions(categorical=("c",) if case.kind == "categorical" else ())
    got = detect_drift(pd.DataFrame({"c": ref}), pd.DataFrame({"c": cur}), options).columns[0]
    assert got.test == expected


def _frames(n_ref: int, n_cur: int) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, ...]]:
    cases = [c for c in CORPUS if (c.n_ref, c.n_cur) == (n_ref, n_cur)]
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({c.name: c.gen(rng, n_ref, False) for c in cases})
    cur = pd.DataFrame({c.name: c.gen(rng, n_cur, True) for c in cases})
    ref["all_null"], cur["all_null"] = np.nan, np.nan
    cats = tuple(c.name for c in cases if c.kind == "categorical")
    return ref, cur, cats


@pytest.mark.parametrize(("n_ref", "n_cur"), [(600, 400), (3000, 2000)])
def test_whole_report_matches_evidently_preset(n_ref: int, n_cur: int) -> None:
    """evidently's DataDriftPreset (through our evidently engine) and the native engine from a
    profile agree column by column; the all-null column is a status, not a crash."""
    ref, cur, cats = _frames(n_ref, n_cur)
    options = DriftOptions(categorical=cats)
    ev = run_evidently(ref, cur, options.model_copy(update={"engine": "evidently"})).report
    profile = ReferenceProfile.from_bytes(build_profile(ref, categorical=cats).to_bytes())
    native = detect_drift(profile, cur, options)
    assert [c.column for c in ev.columns] == [c.column for c in native.columns]
    for e, n in zip(ev.columns, native.columns, strict=True):
        assert (e.test, e.status, e.drifted) == (n.test, n.status, n.drifted), e.column
        if e.score is None:
            assert n.score is None
        else:
            assert n.score == pytest.approx(e.score, rel=1e-6, abs=1e-6), e.column
    assert native.column("all_null").status == "all_null"
    assert (ev.n_drifted, ev.n_columns, ev.drifted) == (native.n_drifted, native.n_columns, native.drifted)
    assert native.n_drifted > 0


LARGE = [
    # sizes past scipy's exact KS limit (10,000) and past the fast counting paths (50,000 rows)
    ("ks", lambda r, n, s: r.normal(0.03 * s, 1, n), 12_000, 11_000),
    ("ks", lambda r, n, s: r.integers(0, 50 + s, n), 60_000, 55_000),
    ("wasserstein", lambda r, n, s: r.integers(-500, 9_000 + 200 * s, n), 60_000, 55_000),
    ("jensenshannon", lambda r, n, s: r.choice([0.5, 1.5, 2.5, 4.0], n, p=_p(0.4, 0.3, 0.2, 0.1, s=s)), 60_000, 55_000),
    ("psi", lambda r, n, s: r.poisson(30 + s, n).astype(float), 60_000, 55_000),
]


@pytest.mark.parametrize(("name", "gen", "n_ref", "n_cur"), LARGE, ids=[f"{t[0]}-{t[2]}" for t in LARGE])
@pytest.mark.parametrize("shifted", [False, True])
def test_large_windows_match_evidently(name: str, gen: Gen, n_ref: int, n_cur: int, shifted: bool) -> None:
    rng = np.random.default_rng(n_ref + len(name))
    ref, cur = pd.Series(gen(rng, n_ref, False)), pd.Series(gen(rng, n_cur, shifted))
    expected = _evidently(name, "numerical", ref, cur)
    got = _native(name, "numerical", ref, cur)
    assert expected is not None and got is not None
    assert got[0] == pytest.approx(expected[0], rel=1e-6, abs=1e-6)
    assert got[1] == expected[1]
