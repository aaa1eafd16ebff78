"""A check never crashes on a bad column: every bad column comes back with a status, and the
others are still tested. Also the dataset verdict, corrections, effect floor and config schema."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from detectors.drift import DriftOptions, detect_drift
from detectors.profile import build_profile


def _windows(n_ref: int = 1500, n_cur: int = 1200) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {
            "good": rng.normal(0, 1, n_ref),
            "shifted": rng.normal(0, 1, n_ref),
            "all_null_ref": np.full(n_ref, np.nan),
            "all_null_cur": rng.normal(0, 1, n_ref),
            "constant": np.full(n_ref, 7.0),
            "gone": rng.normal(0, 1, n_ref),
            "retyped": rng.normal(0, 1, n_ref),
            "mostly_null": np.where(rng.random(n_ref) < 0.9, np.nan, rng.normal(0, 1, n_ref)),
            "city": rng.choice(["a", "b", "c"], n_ref),
            "binary": rng.choice(["yes", "no", "maybe"], n_ref),
        }
    )
    cur = pd.DataFrame(
        {
            "good": rng.normal(0, 1, n_cur),
            "shifted": rng.normal(2, 1, n_cur),
            "all_null_ref": rng.normal(0, 1, n_cur),
            "all_null_cur": np.full(n_cur, np.nan),
            "constant": np.full(n_cur, 7.0),
            "retyped": rng.choice(["x", "y"], n_cur),
            "mostly_null": np.where(rng.random(n_cur) < 0.2, np.nan, rng.normal(0, 1, n_cur)),
            "city": rng.choice(["a", "b", "d", "e"], n_cur),
            "binary": rng.choice(["yes", "no", "maybe"], n_cur),
            "brand_new": rng.normal(0, 1, n_cur),
        }
    )
    return ref, cur


def test_every_bad_column_gets_a_status_and_the_rest_are_tested() -> None:
    ref, cur = _windows()
    # fisher_exact cannot test a 3-value column: that column must fail alone
    r = detect_drift(ref, cur, DriftOptions(per_column_stattest={"binary": "fisher_exact"}))
    status = {c.column: c.status for c in r.columns}
    assert status == {
        "good": "ok",
        "shifted": "ok",
        "all_null_ref": "all_null",
        "all_null_cur": "all_null",
        "constant": "constant",
        "gone": "missing_in_current",
        "retyped": "type_changed",
        "mostly_null": "ok",
        "city": "ok",
        "binary": "ok",
        "brand_new": "new_in_current",
    }
    by = {c.column: c for c in r.columns}
    assert by["shifted"].drifted is True and by["good"].drifted is False
    assert by["constant"].drifted is False and by["constant"].score == 0.0
    assert by["binary"].score is None and by["binary"].drifted is None and "binary" in by["binary"].message
    for name in ("all_null_ref", "all_null_cur", "gone", "retyped", "brand_new"):
        assert by[name].score is None and by[name].drifted is None
    # null shares are their own signal
    assert by["mostly_null"].null_share_ref == pytest.approx(ref["mostly_null"].isna().mean())
    assert by["mostly_null"].null_share_cur == pytest.approx(cur["mostly_null"].isna().mean())
    assert by["all_null_cur"].null_share_cur == 1.0
    # unseen and vanished categories are counted
    assert (by["city"].unseen_categories, by["city"].vanished_categories) == (2, 1)
    assert by["city"].drifted is True
    # the verdict counts only columns with a verdict
    assert r.n_columns == 5 and r.n_drifted == 2 and r.drift_share == 0.4 and not r.drifted


def test_empty_current_window() -> None:
    ref, cur = _windows()
    r = detect_drift(ref, cur.iloc[:0])
    assert {c.status for c in r.columns if c.column != "gone"} <= {"empty", "new_in_current"}
    assert r.n_columns == 0 and r.drift_share == 0.0 and r.drifted is False
    assert r.to_dict()["dataset"] == {"drift_share": 0.0, "n_drifted": 0, "n_columns": 0, "drifted": False}


def test_tiny_windows_still_get_a_verdict() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0, 3.0], "c": ["a", "a", "b"]})
    cur = pd.DataFrame({"x": [10.0], "c": ["b"]})
    r = detect_drift(ref, cur)
    assert [(c.test, c.status) for c in r.columns] == [("chisquare", "ok"), ("z", "ok")]
    assert all(c.drifted is not None for c in r.columns)


def test_an_unexpected_error_in_one_column_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    from detectors.stattests.wasserstein import Wasserstein

    def boom(self: object, ref: object, cur: object) -> float:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(Wasserstein, "score", boom)
    ref, cur = _windows()
    r = detect_drift(ref[["good", "city"]], cur[["good", "city"]])
    good, city = r.columns
    assert good.status == "error" and "kaboom" in good.message and good.drifted is None
    assert city.status == "ok" and city.drifted is not None


def test_drift_share_threshold_decides_the_dataset_verdict() -> None:
    ref, cur = _windows()
    cols = ("good", "shifted", "city", "binary")
    assert detect_drift(ref, cur, DriftOptions(columns=cols)).drifted is True  # 2 of 4
    assert detect_drift(ref, cur, DriftOptions(columns=cols, drift_share=0.75)).drifted is False


def test_overrides_per_column_per_type_and_thresholds() -> None:
    ref, cur = _windows()
    o = DriftOptions(
        columns=("good", "shifted", "city"),
        per_type_stattest={"numerical": "ks"},
        per_column_stattest={"shifted": "psi"},
        per_column_threshold={"good": 0.01},
        per_type_threshold={"categorical": 0.9},
    )
    r = detect_drift(ref, cur, o)
    assert [(c.column, c.test, c.threshold) for c in r.columns] == [
        ("good", "ks", 0.01),
        ("shifted", "psi", 0.1),
        ("city", "jensenshannon", 0.9),
    ]
    assert r.column("city").drifted is False


def _many_pvalues(n_cols: int = 40, n: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(11)
    ref = pd.DataFrame({f"c{i}": rng.normal(0, 1, n) for i in range(n_cols)})
    cur = pd.DataFrame({f"c{i}": rng.normal(0.6 if i < 4 else 0.0, 1, n) for i in range(n_cols)})
    return ref, cur


def test_corrections_never_add_drift_and_bonferroni_is_stricter_than_bh() -> None:
    ref, cur = _many_pvalues()
    drifted = {}
    for correction in ("none", "bh", "bonferroni"):
        r = detect_drift(ref, cur, DriftOptions(stattest="ks", correction=correction))
        drifted[correction] = {c.column for c in r.columns if c.drifted}
        if correction != "none":
            assert all(c.p_adjusted is not None and c.p_adjusted >= c.score for c in r.columns)  # type: ignore[operator]
    assert drifted["bonferroni"] <= drifted["bh"] <= drifted["none"]
    assert {"c0", "c1", "c2", "c3"} <= drifted["bonferroni"]


def test_bh_matches_the_step_up_rule() -> None:
    ref, cur = _many_pvalues()
    r = detect_drift(ref, cur, DriftOptions(stattest="ks", correction="bh"))
    p = np.array([c.score for c in r.columns], dtype=float)
    m = len(p)
    order = np.argsort(p)
    passing = np.nonzero(p[order] <= 0.05 * np.arange(1, m + 1) / m)[0]
    k = passing.max() + 1 if len(passing) else 0
    expected = {r.columns[i].column for i in order[:k]}
    assert {c.column for c in r.columns if c.drifted} == expected


def test_effect_floor_stops_huge_samples_flagging_tiny_shifts() -> None:
    rng = np.random.default_rng(2)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 200_000)})
    cur = pd.DataFrame({"x": rng.normal(0.03, 1, 200_000)})
    plain = detect_drift(ref, cur, DriftOptions(stattest="ks"))
    floored = detect_drift(ref, cur, DriftOptions(stattest="ks", min_effect=0.1))
    assert plain.columns[0].drifted is True  # p-value says drift at this size
    assert floored.columns[0].drifted is False and floored.columns[0].effect == pytest.approx(0.03, abs=0.01)
    big = pd.DataFrame({"x": rng.normal(0.5, 1, 200_000)})
    assert detect_drift(ref, big, DriftOptions(stattest="ks", min_effect=0.1)).columns[0].drifted is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stattest": "kss"}, "unknown stattest 'kss'; valid names: TVD, anderson"),
        ({"per_column_stattest": {"x": "nope"}}, "valid names"),
        ({"per_type_stattest": {"numerical": "chisquare"}}, "chisquare does not accept numerical columns"),
        ({"correction": "holm"}, "'none', 'bonferroni' or 'bh'"),
        ({"drift_share": 0}, "greater than 0"),
        ({"min_effect": -1}, "greater than or equal to 0"),
        ({"engine": "spark"}, "'native' or 'evidently'"),
        ({"unknown_field": 1}, "Extra inputs are not permitted"),
        ({"stattest_threshold": -0.5}, "finite number >= 0"),
        ({"stattest": "ks", "stattest_threshold": 5}, "ks gives p-values, so it must be in (0, 1]"),
        ({"per_column_stattest": {"a": "t_test"}, "per_column_threshold": {"a": 2.0}}, "t_test gives p-values"),
    ],
)
def test_options_are_validated_with_clear_messages(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        DriftOptions(**kwargs)  # type: ignore[arg-type]


def test_options_are_frozen_and_load_from_a_config_mapping() -> None:
    o = DriftOptions.model_validate({"stattest": "psi", "columns": ["a", "b"], "correction": "bh"})
    assert o.columns == ("a", "b")
    with pytest.raises(ValidationError):
        o.drift_share = 0.3  # type: ignore[misc]


def test_a_test_that_does_not_fit_the_column_kind_is_a_clear_error() -> None:
    ref, cur = _windows()
    with pytest.raises(ValueError, match="column 'city': ks does not accept categorical"):
        detect_drift(build_profile(ref), cur, DriftOptions(per_column_stattest={"city": "ks"}))


def test_unknown_requested_column_is_a_clear_error() -> None:
    ref, cur = _windows()
    with pytest.raises(ValueError, match="neither the reference nor the current data: nope"):
        detect_drift(ref, cur, DriftOptions(columns=("good", "nope")))


def test_timestamps_are_skipped_unless_named_and_labels_survive_a_profile_round_trip() -> None:
    from detectors.profile import ReferenceProfile

    ref = pd.DataFrame(
        {
            "ts": pd.date_range("2026-01-01", periods=300, freq="h"),
            "x": np.arange(300.0),
            "mixed": [1, "a", 2.5] * 100,
            "day": pd.to_datetime(["2026-01-01", "2026-01-02"] * 150),
        }
    )
    cur = ref.assign(ts=ref["ts"] + pd.Timedelta(days=30))
    profile = ReferenceProfile.from_bytes(build_profile(ref).to_bytes())
    r = detect_drift(profile, cur)
    assert [c.column for c in r.columns] == ["x", "mixed"]
    assert r.column("mixed").status == "ok" and r.column("mixed").drifted is False
    named = detect_drift(profile, cur, DriftOptions(columns=("day", "mixed")))
    assert named.column("day").unseen_categories == 0 and named.column("day").drifted is False


def test_numbers_stored_as_objects_are_numbers_not_a_changed_type() -> None:
    rng = np.random.default_rng(3)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 500)})
    as_objects = pd.Series(list(rng.normal(0, 1, 400)) + [None] * 100, dtype=object)
    r = detect_drift(ref, pd.DataFrame({"x": as_objects}))
    assert r.columns[0].status == "ok" and r.columns[0].null_share_cur == 0.2 and r.columns[0].drifted is False
    words = pd.Series(["1.5", "n/a"] * 250, dtype=object)
    assert detect_drift(ref, pd.DataFrame({"x": words})).columns[0].status == "type_changed"


def test_unhashable_values_are_compared_by_their_text() -> None:
    ref = pd.DataFrame({"tags": [["a"], ["b"], None] * 50, "x": np.arange(150.0)})
    cur = pd.DataFrame({"tags": [["a"], ["c"], None] * 40, "x": np.arange(120.0)})
    r = detect_drift(ref, cur)
    tags = r.column("tags")
    assert tags.status == "ok" and tags.unseen_categories == 1 and tags.drifted is True
    assert r.column("x").status == "ok"
