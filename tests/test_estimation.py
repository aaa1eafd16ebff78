"""CBPE and the direct-loss estimator against realized metrics on generated data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from detectors.estimation import CBPE, DirectLossEstimator, expected_calibration_error
from detectors.performance import baseline_metrics

METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall", "pr_auc", "log_loss")


def _calibrated(n: int, rng: np.random.Generator, a: float = 1.0, b: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    p = rng.beta(a, b, size=n)
    return p, (rng.uniform(size=n) < p).astype(int)


def test_cbpe_tracks_realized_metrics_under_covariate_shift_of_the_scores() -> None:
    rng = np.random.default_rng(0)
    ref_p, ref_y = _calibrated(20_000, rng)
    est = CBPE(metrics=METRICS, n_sim=200).fit(ref_p, ref_y)
    errors: dict[str, list[float]] = {m: [] for m in METRICS}
    covered: dict[str, list[bool]] = {m: [] for m in METRICS}
    for shift in np.linspace(0.6, 3.0, 12):  # the score distribution moves; P(y | score) does not
        p, y = _calibrated(3000, rng, a=shift, b=1.5)
        got = est.estimate(p)
        real = baseline_metrics(y, proba=p)
        for m in METRICS:
            errors[m].append(abs(got[m].estimate - real[m]))
            covered[m].append(got[m].lower <= real[m] <= got[m].upper)
    for m in METRICS:
        assert np.mean(errors[m]) < 0.015, m
        assert np.mean(covered[m]) >= 0.75, m


def test_cbpe_calibrates_only_when_that_helps() -> None:
    rng = np.random.default_rng(1)
    p, y = _calibrated(20_000, rng)
    assert not CBPE().fit(p, y).calibrated_ or CBPE().fit(
        p, y
    ).calibration_error_calibrated_ < expected_calibration_error(p, y)
    skewed = p**3  # over-confident towards 0: badly calibrated
    est = CBPE(metrics=("accuracy",)).fit(skewed, y)
    assert est.calibrated_
    assert expected_calibration_error(est.calibrate(skewed), y) < 0.5 * expected_calibration_error(skewed, y)
    cur_p, cur_y = _calibrated(5000, rng, a=2.0)
    realized = baseline_metrics(cur_y, proba=cur_p**3)["accuracy"]
    assert est.estimate(cur_p**3)["accuracy"].estimate == pytest.approx(realized, abs=0.02)


def test_cbpe_multiclass_tracks_realized() -> None:
    rng = np.random.default_rng(2)

    def draw(n: int, conc: list[float]) -> tuple[np.ndarray, np.ndarray]:
        proba = rng.dirichlet(conc, size=n)
        cum = proba.cumsum(axis=1)
        y = np.minimum((rng.uniform(size=(n, 1)) > cum).sum(axis=1), 2)
        return proba, y

    ref_p, ref_y = draw(30_000, [0.5, 0.5, 0.5])
    per_class = ("recall[0]", "precision[1]", "f1[2]")
    est = CBPE(metrics=METRICS + per_class, n_sim=200).fit(ref_p, ref_y)
    for conc in ([0.3, 0.6, 0.9], [1.0, 0.4, 0.4]):
        p, y = draw(5000, conc)
        got = est.estimate(p)
        real = baseline_metrics(y, proba=p)
        for m in METRICS + per_class:
            assert got[m].estimate == pytest.approx(real[m], abs=0.03), m
            assert got[m].lower < got[m].upper


def test_cbpe_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        CBPE(metrics=("nonsense",)).fit(np.array([0.1, 0.9]), np.array([0, 1]))
    with pytest.raises(RuntimeError, match="not fitted"):
        CBPE().estimate(np.array([0.5]))
    est = CBPE(calibration="none").fit(np.linspace(0, 1, 100), np.r_[np.zeros(50), np.ones(50)])
    with pytest.raises(ValueError, match="shape"):
        est.estimate(np.ones((10, 3)) / 3)
    with pytest.raises(ValueError, match="multiclass"):
        CBPE(metrics=("recall[1]",)).fit(np.linspace(0, 1, 100), np.r_[np.zeros(50), np.ones(50)])
    with pytest.raises(ValueError, match="among classes"):
        est.estimate(np.full(3, 0.5), pred=np.array([0, 1, 7]))


def test_direct_loss_estimator_follows_the_error_where_the_chunk_moves() -> None:
    rng = np.random.default_rng(3)

    def draw(n: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = rng.normal(size=(n, 3)) + np.array([0.0, shift, 0.0])
        y = X[:, 0] + 0.5 * X[:, 2] + rng.normal(0, 0.3 + 0.5 * np.abs(X[:, 1]), size=n)
        return X, y, X[:, 0] + 0.5 * X[:, 2]

    X, y, pred = draw(6000, 0.0)
    dle = DirectLossEstimator(seed=0).fit(X, y, pred)
    estimates, realized = [], []
    for shift in (0.0, 0.7, 1.4):
        Xc, yc, pc = draw(3000, shift)
        got = dle.estimate(Xc, pc)
        real = baseline_metrics(yc, pc, task="regression")
        assert got["mae"].lower < got["mae"].upper and got["rmse"].lower < got["rmse"].upper
        if shift < 1.0:
            assert got["mae"].estimate == pytest.approx(real["mae"], rel=0.08)
            assert got["rmse"].estimate == pytest.approx(real["rmse"], rel=0.08)
        estimates.append(got["mae"].estimate)
        realized.append(real["mae"])
    # The error grows with the shift and the estimate sees most of it without labels; beyond the
    # reference's range the tree-based loss model flattens out, so it sees only part of it there.
    assert estimates[2] > estimates[0] + 0.5 * (realized[2] - realized[0])
    assert estimates[2] < realized[2]


def test_direct_loss_estimator_checks_its_inputs() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"a": rng.normal(size=300), "city": rng.choice(["x", "y"], size=300)})
    y = frame["a"].to_numpy() + rng.normal(size=300)
    with pytest.raises(ValueError, match="unknown metric"):
        DirectLossEstimator(metrics=("r2",)).fit(frame, y, frame["a"])
    dle = DirectLossEstimator(metrics=("mae",)).fit(frame, y, frame["a"])
    with pytest.raises(ValueError, match="lacks"):
        dle.estimate(frame[["a"]], frame["a"])
    assert dle.estimate(frame, frame["a"])["mae"].estimate > 0
    with pytest.raises(RuntimeError, match="not fitted"):
        DirectLossEstimator().estimate(frame, frame["a"])


def test_direct_loss_estimator_keeps_the_reference_category_codes() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    city = rng.choice(["calm", "stormy"], size=n)
    noise = np.where(city == "stormy", 3.0, 0.1)
    frame = pd.DataFrame({"a": rng.normal(size=n), "city": city})
    y = frame["a"].to_numpy() + rng.normal(0, noise)
    dle = DirectLossEstimator(metrics=("mae",), shift_correction=False).fit(frame, y, frame["a"])
    # A chunk holding only the second category must not have it renumbered as the first.
    stormy = frame[frame["city"] == "stormy"].reset_index(drop=True)
    got = dle.estimate(stormy, stormy["a"])["mae"].estimate
    assert got == pytest.approx(3.0 * np.sqrt(2 / np.pi), rel=0.15)


def test_fitted_estimators_pickle_and_give_the_same_estimates() -> None:
    import pickle

    rng = np.random.default_rng(6)
    p, y = _calibrated(5000, rng)
    cbpe = CBPE(metrics=("accuracy", "roc_auc"), n_sim=50).fit(p, y)
    again = pickle.loads(pickle.dumps(cbpe))
    assert again.estimate(p[:1000]) == cbpe.estimate(p[:1000])
    X = rng.normal(size=(600, 2))
    target = X[:, 0] + rng.normal(size=600)
    dle = DirectLossEstimator(metrics=("mae",)).fit(X, target, X[:, 0])
    assert pickle.loads(pickle.dumps(dle)).estimate(X, X[:, 0]) == dle.estimate(X, X[:, 0])
