"""Quality checks: broken pipelines fail with one short sentence each; benign shifts never fail."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.profile import build_profile
from detectors.quality import check_quality


def _ref(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x": rng.normal(0, 1, n),
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["paris", "rome", "oslo"], n, p=[0.5, 0.3, 0.2]),
        }
    )


PROFILE = build_profile(_ref())


def test_clean_window_passes() -> None:
    q = check_quality(PROFILE, _ref(seed=1))
    assert q.ok and q.failures == () and len(q.columns) == 3 and q.n_rows == 2000


@pytest.mark.parametrize(
    ("mutate", "failure"),
    [
        (lambda d: d.drop(columns="x"), "column 'x' missing"),
        (
            lambda d: d.assign(x=np.where(np.arange(len(d)) % 100 < 97, np.nan, d["x"])),
            "column 'x' null share 0.00 -> 0.97",
        ),
        (lambda d: d.assign(age=d["age"].astype(str) + " years"), "column 'age' type changed numerical -> categorical"),
        (lambda d: d.assign(city=np.arange(len(d)) % 3), "column 'city' type changed categorical -> numerical"),
        (lambda d: d.iloc[:0], "0 rows"),
        (lambda d: d.assign(city=d["city"].str.upper()), "column 'city' 100% of values are unseen categories"),
        (lambda d: d.assign(x=0.0), "column 'x' became constant (0.0)"),
    ],
    ids=["missing", "nulls", "num_to_cat", "cat_to_num", "empty", "re_encoded", "constant"],
)
def test_broken_pipelines_fail_with_a_short_reason(mutate: object, failure: str) -> None:
    q = check_quality(PROFILE, mutate(_ref(seed=1)))  # type: ignore[operator]
    assert not q.ok
    assert failure in q.failures, q.failures


def test_thresholds_are_keyword_arguments() -> None:
    cur = _ref(seed=1)
    cur.loc[: len(cur) // 10, "x"] = np.nan  # 10% nulls
    assert check_quality(PROFILE, cur).ok
    assert not check_quality(PROFILE, cur, max_null_increase=0.05).ok
    assert not check_quality(PROFILE, cur.iloc[:50], min_rows=100).ok
    assert not check_quality(PROFILE, cur.assign(extra=1), allow_new_columns=False).ok


@settings(max_examples=40, deadline=None)
@given(
    shift=st.floats(-3, 3),
    scale=st.floats(0.3, 3),
    weights=st.lists(st.floats(0.05, 1), min_size=3, max_size=3),
    n=st.integers(1, 3000),
    seed=st.integers(0, 1000),
)
def test_a_benign_covariate_shift_is_never_a_quality_failure(
    shift: float, scale: float, weights: list[float], n: int, seed: int
) -> None:
    """Moved and rescaled numbers, re-weighted categories, any window size: still good data."""
    rng = np.random.default_rng(seed)
    p = np.array(weights) / sum(weights)
    cur = pd.DataFrame(
        {
            "x": rng.normal(shift, scale, n),
            "age": rng.integers(18 + int(shift * 5) + 10, 100, n),
            "city": rng.choice(["paris", "rome", "oslo"], n, p=p),
        }
    )
    q = check_quality(PROFILE, cur)
    assert q.ok, q.failures
