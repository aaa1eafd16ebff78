"""The contract every statistical test keeps, run over all of them the same way."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.stattests import STATTESTS, Sample, StatTest, TestNotApplicable, UnknownStatTest, get_stattest

NAMES = sorted(STATTESTS)


def _pair(name: str, shifted: bool, n: int = 400, seed: int = 0) -> tuple[Sample, Sample]:
    """A reference and a current sample fit for the test's kind; ``shifted`` moves the current one
    far enough that every test must see it."""
    rng = np.random.default_rng(seed)
    cls = STATTESTS[name]
    if "numerical" in cls.kinds:
        ref = rng.normal(0, 1, n)
        cur = rng.normal(0, 1, n) + (2.0 if shifted else 0.0)
        return Sample.from_values(ref, "numerical"), Sample.from_values(cur, "numerical")
    if name in ("fisher_exact", "z"):
        levels = ["a", "b"]
        p_ref, p_cur = [0.5, 0.5], ([0.9, 0.1] if shifted else [0.5, 0.5])
    else:
        levels = ["a", "b", "c", "d"]
        p_ref, p_cur = [0.25] * 4, ([0.7, 0.1, 0.1, 0.1] if shifted else [0.25] * 4)
    ref_c = rng.choice(levels, n, p=p_ref)
    cur_c = rng.choice(levels, n, p=p_cur)
    return Sample.from_values(ref_c, "categorical"), Sample.from_values(cur_c, "categorical")


@pytest.mark.parametrize("name", NAMES)
def test_identical_data_is_not_drift(name: str) -> None:
    ref, _ = _pair(name, shifted=False)
    result = get_stattest(name)(ref, ref)
    assert result.drifted is False
    if STATTESTS[name].is_pvalue:
        assert result.score >= 0.25  # anderson's p-value is capped at 0.25 by scipy
    else:
        assert result.score == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_clear_shift_is_drift(name: str) -> None:
    ref, cur = _pair(name, shifted=True)
    result = get_stattest(name)(ref, cur)
    assert result.drifted is True, result


@pytest.mark.parametrize("name", NAMES)
def test_same_distribution_other_draw_is_usually_not_drift(name: str) -> None:
    ref, cur = _pair(name, shifted=False, n=2000, seed=3)
    assert get_stattest(name)(ref, cur).drifted is False


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_rejects_bad_thresholds(name: str, bad: float) -> None:
    with pytest.raises(ValueError, match=name):
        get_stattest(name, bad)


@pytest.mark.parametrize("name", [n for n in NAMES if STATTESTS[n].is_pvalue])
def test_pvalue_tests_reject_thresholds_above_one(name: str) -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        get_stattest(name, 1.5)


@pytest.mark.parametrize("name", NAMES)
def test_pickles_and_compares_by_value(name: str) -> None:
    test = get_stattest(name, 0.2)
    clone = pickle.loads(pickle.dumps(test))
    assert clone == test and hash(clone) == hash(test) and clone != get_stattest(name, 0.3)
    ref, cur = _pair(name, shifted=True)
    assert clone(ref, cur) == test(ref, cur)
    sample_clone = pickle.loads(pickle.dumps(ref))
    assert np.array_equal(sample_clone.counts, ref.counts) and sample_clone.n == ref.n


@pytest.mark.parametrize("name", NAMES)
def test_evidently_names_defaults_and_direction(name: str) -> None:
    """Name, default threshold and direction as evidently registers them."""
    from evidently.legacy.calculations.stattests import registry as ev

    ev_test = next(iter(ev._registered_stat_tests[name].values()))
    cls = STATTESTS[name]
    assert cls.default_threshold == ev_test.default_threshold
    assert cls.display_name == ev_test.display_name
    ev_kinds = {{"num": "numerical", "cat": "categorical"}[t.value] for t in ev_test.allowed_feature_types}
    assert set(cls.kinds) == ev_kinds
    test = cls()
    at = test.threshold
    # at the threshold: p-value tests drift only if inclusive (<=); distances only if inclusive (>=)
    assert test.drifted(at) is cls.inclusive
    assert test.drifted(at / 2 if cls.is_pvalue else at * 2) is True
    assert test.drifted(math.nan) is False


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UnknownStatTest, match="valid names: TVD, anderson, chisquare"):
        get_stattest("kolmogorov")


def test_every_issue_test_is_registered() -> None:
    wanted = {"ks", "chisquare", "z", "psi", "jensenshannon", "wasserstein", "kl_div", "hellinger",
              "cramer_von_mises", "anderson", "mannw", "t_test", "ed", "TVD", "fisher_exact", "g_test"}  # fmt: skip
    assert wanted <= set(STATTESTS)
    assert all(issubclass(cls, StatTest) for cls in STATTESTS.values())


def test_not_applicable_data_raises_the_documented_error() -> None:
    three = Sample.from_values(["a", "b", "c"] * 10, "categorical")
    with pytest.raises(TestNotApplicable, match="binary"):
        get_stattest("fisher_exact")(three, three)
    const = Sample.from_values([1.0] * 30, "numerical")
    with pytest.raises(TestNotApplicable):
        get_stattest("anderson")(const, const)
    empty = Sample.from_values([], "numerical")
    with pytest.raises(TestNotApplicable):
        get_stattest("ks")(const, empty)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from([n for n in NAMES if n != "TVD"]),
    seed=st.integers(0, 2**32 - 1),
    n_ref=st.integers(30, 300),
    n_cur=st.integers(30, 300),
)
def test_scores_ignore_row_order(name: str, seed: int, n_ref: int, n_cur: int) -> None:
    """A test sees distributions, not rows: shuffling either window changes nothing."""
    rng = np.random.default_rng(seed)
    if name == "fisher_exact":
        n_cur = n_ref
    ref, cur = _pair(name, shifted=bool(seed % 2), n=n_ref, seed=seed)
    raw_ref, raw_cur = ref.expand(), cur.expand()[:n_cur]
    kind = ref.kind
    a = get_stattest(name)(Sample.from_values(raw_ref, kind), Sample.from_values(raw_cur, kind))
    b = get_stattest(name)(Sample.from_values(rng.permutation(raw_ref), kind),
                           Sample.from_values(rng.permutation(raw_cur), kind))  # fmt: skip
    assert a.drifted == b.drifted
    assert (math.isnan(a.score) and math.isnan(b.score)) or a.score == pytest.approx(b.score, rel=1e-9, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), shift=st.floats(0.0, 3.0))
def test_distances_grow_with_the_shift(seed: int, shift: float) -> None:
    """Wasserstein and energy distance never shrink when the same draw moves further away."""
    rng = np.random.default_rng(seed)
    ref_raw, cur_raw = rng.normal(0, 1, 300), rng.normal(0, 1, 300)
    ref = Sample.from_values(ref_raw, "numerical")
    for name in ("wasserstein", "ed"):
        near = get_stattest(name)(ref, Sample.from_values(cur_raw + shift, "numerical")).score
        far = get_stattest(name)(ref, Sample.from_values(cur_raw + shift + 0.5, "numerical")).score
        assert far >= near - 1e-12


@pytest.mark.parametrize("name", NAMES)
def test_clones_from_their_parameters(name: str) -> None:
    """Constructors store parameters only (scikit-learn manners): a clone made from them is equal."""
    import copy

    test = get_stattest(name, 0.07)
    assert type(test)(test.threshold) == test == copy.deepcopy(test)
    assert repr(test) == f"{type(test).__name__}(threshold=0.07)"
