"""Embedding drift: parity with evidently's four methods, the profile, specs and the report.

The corpus is made here: correlated Gaussian embeddings of 8 to 384 components
(``benchmarks.embedding_drift.generate``), unshifted and shifted (a fifth of the components moved
by a share of their standard deviation). Every native result comes from a profile stored and
loaded again.

- Where both windows have at most ``sample_rows`` (2,000) rows, the profile keeps every reference
  row and the check reads every current row: each method must give evidently's score (float
  rounding, 1e-9) and verdict, bootstrap thresholds included.
- On larger windows, ``model`` and ``mmd`` run on 2,000-row samples of each window: their scores
  must stay within the sampling tolerance measured by ``benchmarks/embedding_drift.py --sampling``
  (AUC 0.07: the classifier learns from fewer rows, so its AUC runs lower than evidently's when
  the windows differ; squared MMD 0.001) and their verdicts must agree away from the threshold;
  ``distance`` stays exact (the profile keeps the mean) and ``ratio`` counts the same components.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.metrics.data_drift import embedding_drift_methods as ev

from benchmarks.embedding_drift import generate
from detectors.drift import DriftOptions, detect_drift
from detectors.embeddings import (
    EmbeddingOptions,
    EmbeddingProfile,
    build_embedding_profile,
    embedding_drift,
    embedding_matrix,
    resolve_columns,
)
from detectors.profile import ProfileFormatError, ReferenceProfile, build_profile

DIMS = (8, 64, 384)
SIZES = ((300, 250), (1500, 1200))
SHIFTS = (0.0, 0.5)


def _frames(ref: np.ndarray, cur: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    cols = [f"emb_{i}" for i in range(ref.shape[1])]
    return pd.DataFrame(ref, columns=cols), pd.DataFrame(cur, columns=cols)


def _stored(ref: np.ndarray, **kwargs: int) -> EmbeddingProfile:
    ref_df, _ = _frames(ref, ref[:1])
    blob = build_profile(ref_df, embeddings={"e": "emb_*"}, sample_rows=0, text=(), **kwargs).to_bytes()
    return ReferenceProfile.from_bytes(blob).embedding("e")


def _evidently(method: ev.DriftMethod, ref: np.ndarray, cur: np.ndarray) -> tuple[float, bool]:
    ref_df, cur_df = _frames(ref, cur)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        score, drifted, _ = method(cur_df, ref_df)
    return float(score), bool(drifted)


EVIDENTLY: dict[str, Callable[[int], ev.DriftMethod]] = {
    # what EmbeddingsDriftMetric uses when no method is given: model, bootstrap below 1,000 rows
    "model": lambda m: ev.model(bootstrap=m < 1000),
    "ratio": lambda m: ev.ratio(),
    "distance": lambda m: ev.distance(),
    "mmd": lambda m: ev.mmd(),
}


@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize(("m", "n"), SIZES)
@pytest.mark.parametrize("shift", SHIFTS)
def test_same_scores_and_verdicts_as_evidently(dim: int, m: int, n: int, shift: float) -> None:
    ref, cur = (a.astype(np.float64) for a in generate(max(m, n), dim, shift, seed=dim + m))
    ref, cur = ref[:m], cur[:n]
    profile = _stored(ref)
    for method, make in EVIDENTLY.items():
        expected_score, expected_drift = _evidently(make(m), ref, cur)
        got = embedding_drift(profile, cur, EmbeddingOptions(method=method))  # type: ignore[arg-type]
        assert got.exact, method
        assert got.score == pytest.approx(expected_score, abs=1e-9), (method, dim, m, shift)
        assert got.drifted == expected_drift, (method, dim, m, shift, got)


@pytest.mark.parametrize("dim", (8, 64))
@pytest.mark.parametrize("shift", (0.0, 0.3))
def test_bootstrap_thresholds_match_evidently(dim: int, shift: float) -> None:
    """The optional resampled thresholds: evidently does not return them, so the verdicts are
    compared, on both sides of the fixed threshold, and the scores."""
    ref, cur = (a.astype(np.float64) for a in generate(400, dim, shift, seed=dim))
    profile = _stored(ref)
    for method, make in (("model", ev.model(bootstrap=True)), ("distance", ev.distance(bootstrap=True)),
                         ("mmd", ev.mmd(bootstrap=True))):  # fmt: skip
        expected_score, expected_drift = _evidently(make, ref, cur)
        got = embedding_drift(profile, cur, EmbeddingOptions(method=method, bootstrap=True))  # type: ignore[arg-type]
        assert got.bootstrap and got.exact
        assert got.score == pytest.approx(expected_score, abs=1e-9), method
        assert got.drifted == expected_drift, (method, got)


def test_the_shifted_corpus_drifts_and_the_unshifted_does_not_for_three_methods() -> None:
    """Not parity, the meaning: at 1,500 rows and 64 components model, ratio and mmd tell a window
    moved by one standard deviation from an unmoved one (distance too, with a threshold above its
    noise at this dimension)."""
    ref, same = (a.astype(np.float64) for a in generate(1500, 64, 0.0, seed=3))
    profile = _stored(ref)
    for cur, expected in ((same, False), (same + ref.std(axis=0), True)):
        for method in ("model", "ratio", "mmd"):
            assert embedding_drift(profile, cur, EmbeddingOptions(method=method)).drifted is expected  # type: ignore[arg-type]
        moved = embedding_drift(profile, cur, EmbeddingOptions(method="distance", threshold=0.5))
        assert moved.drifted is expected


@pytest.mark.parametrize(("dim", "shift"), [(32, 0.0), (32, 0.5), (128, 0.0), (128, 0.5)])
def test_sampled_methods_stay_within_the_sampling_tolerance(dim: int, shift: float) -> None:
    ref, cur = (a.astype(np.float64) for a in generate(5000, dim, shift, seed=dim))
    profile = _stored(ref)
    assert len(profile.sample) == 2000 and not profile.whole
    for method, tolerance in (("model", 0.07), ("mmd", 0.001)):
        expected_score, expected_drift = _evidently(EVIDENTLY[method](5000), ref, cur)
        got = embedding_drift(profile, cur, EmbeddingOptions(method=method))  # type: ignore[arg-type]
        assert not got.exact
        assert abs((got.score or 0.0) - expected_score) <= tolerance, (method, got.score, expected_score)
        assert got.drifted == expected_drift, (method, got, expected_score)
    expected_score, expected_drift = _evidently(ev.distance(), ref, cur)
    got = embedding_drift(profile, cur, EmbeddingOptions(method="distance"))
    assert got.score == pytest.approx(expected_score, abs=1e-9) and got.drifted == expected_drift
    expected_score, expected_drift = _evidently(ev.ratio(), ref, cur)
    got = embedding_drift(profile, cur, EmbeddingOptions(method="ratio"))
    assert not got.exact  # 5,000 distinct values a component: sketched
    assert got.score == pytest.approx(expected_score, abs=1e-12) and got.drifted == expected_drift


def test_profile_keeps_evidently_bandwidth_rows_and_a_uniform_sample() -> None:
    ref = np.random.default_rng(0).normal(size=(6000, 4))
    profile = build_embedding_profile("e", ("v",), ref)
    pandas_rows = pd.DataFrame(ref).sample(1000, random_state=0).to_numpy()
    assert np.array_equal(np.sort(profile.sample[profile.bandwidth], axis=0), np.sort(pandas_rows, axis=0))
    assert profile.sample.shape == (2000, 4)
    # the sample is of the reference's rows, in its order
    positions = [int(np.flatnonzero((ref == row).all(axis=1))[0]) for row in profile.sample[:50]]
    assert positions == sorted(positions)
    assert np.allclose(profile.mean, ref.mean(axis=0))
    with pytest.raises(ValueError, match="at least 1000"):
        build_embedding_profile("e", ("v",), ref, sample_rows=500)


def test_list_column_glob_and_column_list_give_the_same_result() -> None:
    ref, cur = (a.astype(np.float64) for a in generate(600, 6, 0.4, seed=1))
    names = [f"f{i}" for i in range(6)]

    def frame(a: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"id": range(len(a)), "vec": list(a), **{n: a[:, i] for i, n in enumerate(names)}})

    specs = {"list": "vec", "glob": "f*", "comma": ",".join(names), "listed": tuple(names)}
    report = detect_drift(frame(ref), frame(cur), DriftOptions(embeddings=specs))
    scores = {e.name: e.score for e in report.embeddings}
    assert len(set(scores.values())) == 1, scores
    assert [c.column for c in report.columns] == ["id"]  # embedding columns are not columns


def test_a_parquet_list_column_round_trip(tmp_path: Path) -> None:
    ref, cur = (a.astype(np.float32) for a in generate(400, 8, 0.0, seed=2))
    for name, a in (("ref", ref), ("cur", cur)):
        pd.DataFrame({"vec": list(a)}).to_parquet(tmp_path / f"{name}.parquet")
    back = pd.read_parquet(tmp_path / "ref.parquet")
    assert np.array_equal(embedding_matrix(back, ["vec"]), ref.astype(np.float64))
    report = detect_drift(back, pd.read_parquet(tmp_path / "cur.parquet"), DriftOptions(embeddings={"v": "vec"}))
    assert report.embeddings[0].status == "ok" and report.embeddings[0].n_reference == 400


def test_rows_with_missing_or_non_finite_vectors_are_dropped_and_counted() -> None:
    frame = pd.DataFrame({"vec": [[1.0, 2.0], None, [np.nan, 1.0], [0.5, 0.5]] * 300})
    profile = build_profile(frame, embeddings={"v": "vec"}, text=()).embedding("v")
    assert (profile.n_rows, profile.n_null) == (600, 600)


@pytest.mark.parametrize(
    ("columns", "spec", "message"),
    [
        (["a", "b"], "emb_*", "no column matches 'emb_\\*'"),
        (["a", "b"], "a,c", "not in the data: c"),
        (["a"], ",", "no columns given"),
    ],
)
def test_bad_specs_say_what_is_wrong(columns: list[str], spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_columns(columns, spec, "e")


def test_vectors_of_different_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        embedding_matrix(pd.DataFrame({"vec": [[1.0, 2.0], [1.0]]}), ["vec"], "e")
    with pytest.raises(ValueError, match="holds str values, not lists of numbers"):
        embedding_matrix(pd.DataFrame({"vec": ["ab", "cd"]}), ["vec"], "e")
    with pytest.raises(ValueError, match="values that are not numbers"):
        embedding_matrix(pd.DataFrame({"vec": [["a", "b"], [1.0, 2.0]]}), ["vec"], "e")


def test_a_bad_current_embedding_gets_a_status_and_the_other_checks_go_on() -> None:
    ref, cur = (a.astype(np.float64) for a in generate(300, 4, 0.0, seed=4))
    ref_df = pd.DataFrame({"x": ref[:, 0], "vec": list(ref)})
    cur_df = pd.DataFrame({"x": cur[:, 0], "vec": list(cur[:, :3])})  # one component short
    report = detect_drift(ref_df, cur_df, DriftOptions(embeddings={"v": "vec"}))
    (emb,) = report.embeddings
    assert emb.status == "error" and "3 components, the reference has 4" in emb.message
    assert report.to_dict()["embeddings"] == [
        {"name": "v", "method": "model", "score": None, "threshold": None, "drifted": None}
    ]
    assert report.column("x").status == "ok" and report.n_columns == 1


def test_a_profile_without_the_named_embedding_is_an_error() -> None:
    frame = pd.DataFrame({"x": np.arange(10.0)})
    with pytest.raises(ValueError, match="no embedding 'v'"):
        detect_drift(build_profile(frame), frame, DriftOptions(embeddings={"v": "vec"}))


def test_embeddings_count_in_the_dataset_share_and_the_json() -> None:
    ref, cur = (a.astype(np.float64) for a in generate(1200, 8, 1.0, seed=5))
    ref_df = pd.DataFrame({"x": ref[:, 0] * 0 + np.arange(1200.0), "vec": list(ref)})
    cur_df = pd.DataFrame({"x": np.arange(1200.0), "vec": list(cur)})
    report = detect_drift(ref_df, cur_df, DriftOptions(embeddings={"v": "vec"}, drift_share=0.5))
    assert (report.n_columns, report.n_drifted, report.drifted) == (2, 1, True)
    (entry,) = report.to_dict()["embeddings"]
    assert set(entry) == {"name", "method", "score", "threshold", "drifted"}
    assert entry["method"] == "model" and entry["threshold"] == 0.55 and entry["drifted"] is True


def test_format_1_profiles_still_load_and_check_the_same() -> None:
    """``tests/data/profile_format1.bin`` was written by the format-1 code (before embeddings)
    from the frame rebuilt here."""
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"x": np.round(rng.normal(size=300), 3), "c": rng.choice(["a", "b", "c"], 300),
                          "n": rng.integers(0, 5, 300)})  # fmt: skip
    old = ReferenceProfile.load(Path(__file__).parent / "data" / "profile_format1.bin")
    new = build_profile(frame, categorical=("c",), sample_rows=50)
    assert old.embeddings == () and old.texts == () and old.row_sample is not None
    options = DriftOptions(categorical=("c",))
    current = frame.assign(x=frame["x"] + 0.2)
    assert detect_drift(old, current, options).to_dict() == detect_drift(new, current, options).to_dict()
    with pytest.raises(ProfileFormatError, match="format 9 is not supported"):
        blob = new.to_bytes()
        ReferenceProfile.from_bytes(blob[:10] + (9).to_bytes(4, "little") + blob[14:])


def test_options_validate_names_and_tests() -> None:
    with pytest.raises(ValueError):
        EmbeddingOptions(method="pca")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="does not accept numerical"):
        EmbeddingOptions(component_stattest="chisquare")
    with pytest.raises(ValueError, match="give a list column"):
        DriftOptions(embeddings={"v": ""})
    ks = EmbeddingOptions(method="ratio", component_stattest="ks", component_stattest_threshold=0.05)
    ref, cur = (a.astype(np.float64) for a in generate(800, 8, 0.0, seed=6))
    assert embedding_drift(ref, cur, ks).drifted is False
    assert embedding_drift(ref, cur + 0.5 * ref.std(axis=0), ks).drifted is True
