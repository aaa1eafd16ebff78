"""Reference profiles: deterministic bytes and hash, exact round trips, merging, and the sketch's
documented accuracy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.drift import DriftOptions, current_sample, detect_drift
from detectors.profile import ProfileFormatError, ReferenceProfile, build_profile, merge_profiles
from detectors.stattests import get_stattest


def _frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    x[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "k": rng.integers(0, 7, n),
            "flag": rng.random(n) < 0.3,
            "city": rng.choice(["paris", "rome", "oslo"], n),
            "code": rng.choice([10, 20, 30], n),
        }
    )


def test_schema_kinds_and_null_shares() -> None:
    df = _frame()
    p = build_profile(df, categorical=("code",))
    assert p.n_rows == 500 and p.columns == ("x", "k", "flag", "city", "code")
    assert p.kinds == {"x": "numerical", "k": "numerical", "flag": "categorical", "city": "categorical",
                       "code": "categorical"}  # fmt: skip
    assert p.column("x").null_share == pytest.approx(df["x"].isna().mean())
    assert p.column("k").sample.integer is True
    assert p.column("city").family == "string" and p.column("flag").family == "bool"


def test_bytes_are_deterministic_and_the_hash_follows_content() -> None:
    a, b = build_profile(_frame()), build_profile(_frame())
    assert a.to_bytes() == b.to_bytes() and a.content_hash == b.content_hash
    assert len(a.content_hash) == 64 and int(a.content_hash, 16) >= 0
    changed = _frame()
    changed.loc[0, "city"] = "lima"
    assert build_profile(changed).content_hash != a.content_hash


def test_round_trip_keeps_every_column_exactly(tmp_path: Path) -> None:
    p = build_profile(_frame(), categorical=("code",))
    p.save(tmp_path / "p.bin")
    q = ReferenceProfile.load(tmp_path / "p.bin")
    assert q.content_hash == p.content_hash and q.kinds == p.kinds
    for a, b in zip(p.column_profiles, q.column_profiles, strict=True):
        assert (a.name, a.kind, a.family, a.n_null, a.n_rows) == (b.name, b.kind, b.family, b.n_null, b.n_rows)
        assert a.sample.values.tolist() == b.sample.values.tolist()
        assert a.sample.counts.tolist() == b.sample.counts.tolist()
        assert [type(v) for v in a.sample.values.tolist()] == [type(v) for v in b.sample.values.tolist()]


def test_drift_from_profile_equals_drift_from_raw_data() -> None:
    ref, cur = _frame(seed=1), _frame(seed=2)
    cur["x"] += 0.5
    options = DriftOptions(categorical=("code",))
    raw = detect_drift(ref, cur, options)
    stored = detect_drift(
        ReferenceProfile.from_bytes(build_profile(ref, categorical=("code",)).to_bytes()), cur, options
    )
    assert raw == stored


def test_to_frame_rebuilds_the_same_values() -> None:
    df = _frame()
    back = build_profile(df).to_frame()
    assert len(back) == len(df)
    for col in df.columns:
        assert sorted(df[col].dropna().tolist()) == sorted(back[col].dropna().tolist())
        assert back[col].isna().sum() == df[col].isna().sum()


def test_merging_partial_profiles_equals_one_profile() -> None:
    df = _frame(900)
    whole = build_profile(df)
    merged = merge_profiles(
        [build_profile(df.iloc[:300]), build_profile(df.iloc[300:700]), build_profile(df.iloc[700:])]
    )
    assert merged.n_rows == whole.n_rows
    for a, b in zip(whole.column_profiles, merged.column_profiles, strict=True):
        assert a.n_null == b.n_null
        assert dict(zip(a.sample.values.tolist(), a.sample.counts.tolist(), strict=True)) == dict(
            zip(b.sample.values.tolist(), b.sample.counts.tolist(), strict=True)
        )


@pytest.mark.parametrize(
    "blob", [b"", b"garbage", b"RCPROFILE\x00\x01\x00\x00\x00notzlib", b"RCPROFILE\x00\x09\x00\x00\x00"]
)
def test_bad_bytes_raise_a_clear_error(blob: bytes) -> None:
    with pytest.raises(ProfileFormatError):
        ReferenceProfile.from_bytes(blob)


def test_unknown_columns_are_named() -> None:
    with pytest.raises(KeyError, match="nope"):
        build_profile(_frame(), columns=["x", "nope"])


@pytest.mark.parametrize(
    "gen",
    [
        lambda r, n, s: r.normal(s, 1, n),
        lambda r, n, s: r.lognormal(s, 1, n),
        lambda r, n, s: r.standard_t(2, n) + s,
    ],
    ids=["normal", "lognormal", "student_t2"],
)
def test_sketch_stays_within_the_documented_tolerance(gen: object) -> None:
    """A column with more distinct values than ``max_exact`` is sketched; its KS statistic and
    normed Wasserstein distance stay within 1e-3 of the exact ones (docs/drift.md)."""
    from detectors.stattests.ks import ks_statistic

    rng = np.random.default_rng(5)
    ref = pd.DataFrame({"x": gen(rng, 60_000, 0.0)})  # type: ignore[operator]
    cur = pd.DataFrame({"x": gen(rng, 50_000, 0.05)})  # type: ignore[operator]
    exact = build_profile(ref, max_exact=10**9).column("x")
    sketch = build_profile(ref).column("x")
    assert sketch.sketch and not exact.sketch and sketch.n_unique < 20_000
    e_cur, s_cur = current_sample(exact, cur["x"]), current_sample(sketch, cur["x"])
    assert abs(ks_statistic(exact.sample, e_cur) - ks_statistic(sketch.sample, s_cur)) < 1e-3
    w = get_stattest("wasserstein")
    assert abs(w(exact.sample, e_cur).score - w(sketch.sample, s_cur).score) < 1e-3
    # identical windows stay identical through the sketch (up to summation order in bin means)
    assert w(sketch.sample, current_sample(sketch, ref["x"])).score < 1e-12


def test_row_sample_round_trips_with_nulls_and_types() -> None:
    df = _frame(3000)
    p = ReferenceProfile.from_bytes(build_profile(df, categorical=("code",), sample_rows=100).to_bytes())
    assert p.row_sample is not None and len(p.row_sample) == 100 and list(p.row_sample.columns) == list(df.columns)
    again = build_profile(df, categorical=("code",), sample_rows=100)
    assert again.row_sample is not None
    pd.testing.assert_series_equal(p.row_sample["x"], again.row_sample["x"].astype(float), check_names=False)
    assert p.row_sample["city"].tolist() == again.row_sample["city"].tolist()
    assert p.row_sample["code"].tolist() == again.row_sample["code"].tolist()
    assert build_profile(df, sample_rows=0).row_sample is None


def test_exact_parts_merge_into_the_same_sketch_as_one_build() -> None:
    rng = np.random.default_rng(9)
    df = pd.DataFrame({"x": rng.lognormal(0, 1, 60_000), "c": rng.choice(["a", "b"], 60_000)})
    whole = build_profile(df, sample_rows=0)
    parts = [build_profile(df.iloc[i : i + 20_000], max_exact=10**9, sample_rows=0) for i in range(0, 60_000, 20_000)]
    merged = merge_profiles(parts)
    a, b = whole.column("x"), merged.column("x")
    assert a.sketch and b.sketch and (a.sketch_lo, a.sketch_hi) == (b.sketch_lo, b.sketch_hi)
    assert a.sample.counts.tolist() == b.sample.counts.tolist()
    assert np.allclose(a.sample.values, b.sample.values, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="larger max_exact"):
        merge_profiles([whole, whole])
